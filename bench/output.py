"""Part 6: output streams — how many chunks per second reach a watcher, and how late.

`demo.chat` tasks on the real processes (`python -m worker`, `python -m api`) stream
`output_tokens` tokens each, one every `output_token_seconds` on a fixed schedule from
the step's start; one SSE client per task (raw sockets) in this process.

Latency of a token = the wall-clock time its chunk reached the client minus the time
the step wrote it. The write time is read off the schedule: the step's
`task.step.started.v1` stamp plus `k * output_token_seconds` for token k (the step
starts its schedule just before it records that event, whose stamp is taken while the
envelope is built, before the commit: the figure is optimistic by that fraction of a
millisecond). It includes the coalescing (a 40 ms window, at most 50 ms added) — the price of
writing many tokens per event. Tokens written before the client's stream was open are
history, not live, and are left out. Write -> recorded (the envelope's stamp, taken when
the flush builds it) is what the coalescing adds: the target is <= 50 ms.

In the same run, alternating rounds carry the same output on Temporal Workflow Streams
(bench/output_streams.py), and both sides count the Temporal history events their
workflows used for it.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from typing import Any

import httpx
import orjson

from activities.chat import answer_tokens
from bench import flush_cost, output_streams
from bench.context import BenchContext
from bench.procs import ChildProcess
from bench.sse_client import SseConnection, open_stream
from bench.stats import epoch, median, summary_ms
from schemas.workflow import workflow_id_for


async def _round(ctx: BenchContext, api: ChildProcess, index: int) -> dict[str, Any]:
    sizes = ctx.sizes
    streams: list[tuple[str, SseConnection]] = []
    task_ids: list[str] = []
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        for n in range(sizes.output_tasks):
            prompt = f"bench round {index} task {n}"
            task_input = {
                "prompt": prompt,
                "tokens": sizes.output_tokens,
                "token_seconds": sizes.output_token_seconds,
            }
            created = await http.post("/tasks", json={"type": "demo.chat", "input": task_input})
            created.raise_for_status()
            task_id = created.json()["task_id"]
            task_ids.append(task_id)
            streams.append(
                (prompt, await open_stream("127.0.0.1", api.port, f"/tasks/{task_id}/events"))
            )
        await asyncio.gather(*(s.closed for _, s in streams))
    latencies: list[float] = []
    recorded: list[float] = []  # the output event's own stamp -> client, per event
    buffered: list[float] = []  # a token's write -> its event's stamp (the coalescing's part)
    written_live: list[float] = []
    received: list[float] = []
    events = tokens_live = history = 0
    for prompt, stream in streams:
        tokens = answer_tokens(prompt, sizes.output_tokens)
        ends = list(itertools.accumulate(len(token) for token in tokens))
        began: float | None = None
        for frame in stream.frames:
            if not frame.is_event:
                continue
            envelope = orjson.loads(frame.data)
            data = envelope["data"]
            if envelope["type"] == "task.step.started.v1" and data["attempt"] == 1:
                began = epoch(envelope["time"])
            if envelope["type"] != "task.output.v1" or began is None or data["attempt"] != 1:
                continue
            events += 1
            if epoch(envelope["time"]) >= stream.opened_at:
                recorded.append(frame.received - epoch(envelope["time"]))
            # Tokens whose last character is in this chunk: first..last (1-based).
            first = bisect.bisect_right(ends, data["offset"]) + 1
            last = bisect.bisect_right(ends, data["offset"] + len(data["text"]))
            for token in range(first, last + 1):
                written = began + token * sizes.output_token_seconds
                if written < stream.opened_at:
                    history += 1
                    continue
                tokens_live += 1
                latencies.append(frame.received - written)
                written_live.append(written)
                buffered.append(epoch(envelope["time"]) - written)
                received.append(frame.received)
    # From the first live token's write to the last arrival: a side that delivers in
    # bursts is not credited with the burst's rate.
    span = (max(received) - min(written_live)) if received else 0.0
    counts = await output_streams.history_counts(
        ctx.client, [workflow_id_for(task_id) for task_id in task_ids]
    )
    return {
        "tasks": len(streams),
        "output_events": events,
        "tokens_live": tokens_live,
        "tokens_as_history": history,
        "tokens_per_event": round((tokens_live + history) / events, 1) if events else None,
        "chunks_per_s": round(tokens_live / span, 1) if span else None,
        "events_per_s": round(events / span, 1) if span else None,
        "history_events_per_task": round(counts["history_events"] / len(task_ids), 1),
        "write_to_client": latencies,
        "record_to_client": recorded,
        "write_to_record": buffered,
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    api = ChildProcess("api", ctx.endpoints, ctx.log_dir)
    worker = ChildProcess("worker", ctx.endpoints, ctx.log_dir, task_queue=api.task_queue)
    children = [worker, api]
    streams_worker = None
    if ctx.sizes.output_streams:
        streams_worker = ChildProcess("bench.worker", ctx.endpoints, ctx.log_dir)
        children.append(streams_worker)
    for child in children:
        child.start()
    rounds: list[dict[str, Any]] = []
    streams: list[dict[str, Any]] = []
    try:
        await asyncio.to_thread(api.wait_ready)
        await asyncio.sleep(2)  # the workers' pollers are up well before this
        for index in range(ctx.sizes.output_rounds):
            began = time.monotonic()
            result = await _round(ctx, api, index)
            result["seconds"] = round(time.monotonic() - began, 2)
            rounds.append(result)
            _print_round(index, "taskplane", result)
            if streams_worker is not None:
                streams.append(
                    await output_streams.streams_round(ctx, streams_worker.task_queue, index)
                )
                _print_round(index, "streams  ", streams[-1])
        flushes = await flush_cost.run(ctx, ctx.sizes.output_flushes)
        print(flush_cost.render(flushes))
    finally:
        for child in reversed(children):
            child.stop()
    every = [x for r in rounds for x in r["write_to_client"]]
    events = [x for r in rounds for x in r["record_to_client"]]
    buffered = [x for r in rounds for x in r["write_to_record"]]
    result = {
        "task_type": "demo.chat",
        "tasks_per_round": ctx.sizes.output_tasks,
        "tokens_per_task": ctx.sizes.output_tokens,
        "offered_chunks_per_s": round(ctx.sizes.output_tasks / ctx.sizes.output_token_seconds, 1),
        "write_to_client": summary_ms(every),
        # The event's part alone (recorded -> client); the rest of write -> client is the
        # time a token waited in the step's buffer (coalescing, the previous flush).
        "record_to_client": summary_ms(events),
        # That wait itself: what the coalescing adds (target <= 50 ms).
        "write_to_record": summary_ms(buffered),
        "history_events_per_task": median([r["history_events_per_task"] for r in rounds]),
        "flush_cost": flushes,
        "rounds": [
            {k: v for k, v in r.items() if not isinstance(v, list)}
            | summary_ms(r["write_to_client"])
            for r in rounds
        ],
    }
    if streams:
        result["workflow_streams"] = output_streams.summarise(streams, ctx.sizes)
    return result


def _print_round(index: int, side: str, result: dict[str, Any]) -> None:
    s = summary_ms(result["write_to_client"])
    per = result.get("tokens_per_event") or result.get("tokens_per_signal")
    print(
        f"  output round {index + 1}: {side} {result['chunks_per_s']} chunks/s"
        f" ({per} per event/signal),  p50 {s['p50_ms']:.1f} ms  p99 {s['p99_ms']:.1f} ms"
    )


def render(result: dict[str, Any]) -> list[str]:
    s = result["write_to_client"]
    e = result["record_to_client"]
    b = result["write_to_record"]
    rounds = result["rounds"]
    chunks = [r["chunks_per_s"] for r in rounds if r["chunks_per_s"]]
    per_event = [r["tokens_per_event"] for r in rounds if r["tokens_per_event"]]
    lines = [
        "",
        f"Output streams: demo.chat, {result['tasks_per_round']} tasks x"
        f" {result['tokens_per_task']} tokens, {result['offered_chunks_per_s']} chunks/s offered",
        f"  delivered {min(chunks, default=0)}-{max(chunks, default=0)} chunks/s,"
        f" {min(per_event, default=0)}-{max(per_event, default=0)} chunks per event;"
        f" write -> client p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms;",
        f"  of which event recorded -> client p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms;",
        f"  added by coalescing (write -> recorded) p50 {b['p50_ms']:.1f} ms,"
        f" p99 {b['p99_ms']:.1f} ms (target <= 50 ms)",
    ]
    lines.append(flush_cost.render(result["flush_cost"]))
    if "workflow_streams" in result:
        lines += output_streams.render(result, result["workflow_streams"])
    return lines
