"""Part 6's baseline: the same output carried by Temporal Workflow Streams.

`BenchStreamedChat` on `python -m bench.worker` publishes `demo.chat`'s tokens (the
same `answer_tokens`, the same count, the same schedule) to its own Workflow Stream
(`temporalio.contrib.workflow_streams`): the activity's publisher batches them into
signals (`batch_ms`, 40 ms by default: Taskplane's own coalescing window; 0 =
`force_flush` per token), one `WorkflowStreamClient.subscribe` per task in this
process long-polls them through updates (the library's default 100 ms poll cooldown).

Latency of a token as on the Taskplane side: received minus its place on the schedule
(`began + k * token_seconds`, `began` told by the stream's first item); tokens due
before the subscription opened are history and left out. Every signal, update and
workflow task is an event in the workflow's history, which Temporal caps (50K events
by default: a workflow past it is terminated), so the part also counts the history
events each side's workflows used for the same output.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from bench.context import BenchContext
from bench.models import BenchChatInput
from bench.stats import median, summary_ms
from bench.workflows import ANSWER_TOPIC

HISTORY_CAP = 50_000  # Temporal's default history length limit (events), in round figures


async def history_counts(client: Client, workflow_ids: list[str]) -> dict[str, int]:
    """Events in each workflow's history, all of them and the signals among them."""

    async def one(workflow_id: str) -> tuple[int, int]:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        signals = sum(
            1
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        )
        return len(history.events), signals

    counts = await asyncio.gather(*(one(workflow_id) for workflow_id in workflow_ids))
    return {
        "history_events": sum(total for total, _ in counts),
        "signals": sum(signals for _, signals in counts),
    }


async def streams_round(ctx: BenchContext, task_queue: str, index: int) -> dict[str, Any]:
    sizes = ctx.sizes
    received: list[tuple[float, list[tuple[float, dict[str, Any]]]]] = []

    async def watch(workflow_id: str) -> None:
        stream = WorkflowStreamClient.create(ctx.client, workflow_id)
        opened_at = time.time()
        items: list[tuple[float, dict[str, Any]]] = []
        async for item in stream.subscribe(ANSWER_TOPIC, from_offset=0, result_type=dict):
            items.append((time.time(), item.data))
        received.append((opened_at, items))

    workflow_ids: list[str] = []
    watchers = []
    for n in range(sizes.output_tasks):
        request = BenchChatInput(
            task_id=str(uuid.uuid4()),
            prompt=f"bench round {index} task {n}",
            tokens=sizes.output_tokens,
            token_seconds=sizes.output_token_seconds,
            batch_ms=sizes.output_streams_batch_ms,
        )
        workflow_id = f"bench-chat-{request.task_id}"
        await ctx.client.start_workflow(
            "BenchStreamedChat", request, id=workflow_id, task_queue=task_queue
        )
        workflow_ids.append(workflow_id)
        watchers.append(asyncio.create_task(watch(workflow_id)))
    await asyncio.gather(*watchers)
    latencies: list[float] = []
    arrivals: list[float] = []
    written_live: list[float] = []
    tokens_live = history = 0
    for opened_at, items in received:
        began = next(data["began"] for _, data in items if "began" in data)
        tokens = [(at, data) for at, data in items if "text" in data]
        for k, (at, _) in enumerate(tokens, start=1):
            written = began + k * sizes.output_token_seconds
            if written < opened_at:
                history += 1
                continue
            tokens_live += 1
            latencies.append(at - written)
            arrivals.append(at)
            written_live.append(written)
    counts = await history_counts(ctx.client, workflow_ids)
    span = (max(arrivals) - min(written_live)) if arrivals else 0.0  # as bench/output.py
    all_tokens = tokens_live + history
    return {
        "tasks": len(workflow_ids),
        "tokens_live": tokens_live,
        "tokens_as_history": history,
        "signals": counts["signals"],
        "tokens_per_signal": round(all_tokens / counts["signals"], 1)
        if counts["signals"]
        else None,
        "history_events_per_task": round(counts["history_events"] / len(workflow_ids), 1),
        "chunks_per_s": round(tokens_live / span, 1) if span else None,
        "write_to_client": latencies,
    }


def summarise(rounds: list[dict[str, Any]], sizes: Any) -> dict[str, Any]:
    every = [x for r in rounds for x in r["write_to_client"]]
    per_task = median([r["history_events_per_task"] for r in rounds])
    per_token = per_task / sizes.output_tokens
    return {
        "batch_ms": sizes.output_streams_batch_ms,
        "settings": (
            f"publisher batch_interval {sizes.output_streams_batch_ms} ms"
            if sizes.output_streams_batch_ms
            else "publish(force_flush=True) per token"
        )
        + "; subscribe() default poll_cooldown 100 ms",
        "write_to_client": summary_ms(every),
        "history_events_per_task": per_task,
        # How long a chat could stream at this rate before its workflow hit the cap.
        "tokens_before_history_cap": round(HISTORY_CAP / per_token) if per_token else None,
        "rounds": [
            {k: v for k, v in r.items() if not isinstance(v, list)}
            | summary_ms(r["write_to_client"])
            for r in rounds
        ],
    }


def render(taskplane: dict[str, Any], streams: dict[str, Any]) -> list[str]:
    """Both systems, the same output, one row each."""
    rows = [
        ("Taskplane (SSE)", taskplane["rounds"], taskplane["write_to_client"]),
        ("Workflow Streams", streams["rounds"], streams["write_to_client"]),
    ]
    lines = [
        f"  {'same output, same run':<18} {'chunks/s':>15} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'history events/task':>20} {'tokens to 50K cap':>18}"
    ]
    caps = {
        "Taskplane (SSE)": "unbounded",
        "Workflow Streams": f"{streams['tokens_before_history_cap']:,}",
    }
    events = {
        "Taskplane (SSE)": taskplane["history_events_per_task"],
        "Workflow Streams": streams["history_events_per_task"],
    }
    for name, rounds, latency in rows:
        rates = [r["chunks_per_s"] for r in rounds if r["chunks_per_s"]]
        rate = f"{min(rates, default=0)}-{max(rates, default=0)}"
        lines.append(
            f"  {name:<18} {rate:>15} {latency['p50_ms']:>8.1f} {latency['p99_ms']:>8.1f}"
            f" {events[name]:>20} {caps[name]:>18}"
        )
    lines.append(f"  (Workflow Streams: {streams['settings']})")
    return lines
