"""Part 6's lever: what one flush of a step's writes costs to record, two ways, same run.

A flush of `demo.chat`'s step is three events (an output chunk, the merged metadata,
the progress). Production records them in one store transaction
(`EventRecorder.record_many`); the baseline records them one after the other, each
its own (`record` three times, as before that). Flushes alternate between the two
(ABAB, one task each, in this process on the bench's pool and broker), so load that
drifts during the run weighs on both alike. Wall time per flush, validate to publish.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from activities.recorder import EventRecorder, NewEvent
from bench.context import BenchContext
from bench.stats import summary_ms
from store import EventStore, Outbox


def _flush(n: int) -> list[NewEvent]:
    where = {"step": 1, "attempt": 1}
    return [
        NewEvent(
            str(uuid.uuid4()),
            "task.output.v1",
            {"stream": "answer", "text": " tokens" * 4, "offset": n * 28, **where},
        ),
        NewEvent(
            str(uuid.uuid4()),
            "task.metadata.updated.v1",
            {"patch": {"tokens": (n + 1) * 4}, **where},
        ),
        NewEvent(
            str(uuid.uuid4()),
            "task.step.progress.v1",
            {"index": 1, "name": "answer", "percent": 50.0, "total_steps": 1, "attempt": 1},
        ),
    ]


async def _new_task(recorder: EventRecorder) -> str:
    task_id = str(uuid.uuid4())
    await recorder.record(
        event_id=str(uuid.uuid4()),
        task_id=task_id,
        event_type="task.created.v1",
        data={"task_type": "demo.chat", "input": {}},
    )
    return task_id


async def run(ctx: BenchContext, flushes: int) -> dict[str, Any]:
    recorder = EventRecorder(EventStore(ctx.pool), Outbox(ctx.pool), ctx.broker)
    batched, one_by_one = await _new_task(recorder), await _new_task(recorder)
    together: list[float] = []
    apart: list[float] = []
    for n in range(flushes):
        events = _flush(n)
        began = time.perf_counter()
        if n % 2 == 0:
            await recorder.record_many(batched, events)
            together.append(time.perf_counter() - began)
        else:
            for event in events:
                await recorder.record(
                    event_id=event.event_id,
                    task_id=one_by_one,
                    event_type=event.event_type,
                    data=event.data,
                )
            apart.append(time.perf_counter() - began)
    await recorder.flush_marks()
    one, each = summary_ms(together), summary_ms(apart)
    return {
        "events_per_flush": 3,
        "one_transaction": one,
        "one_per_event": each,
        "ratio_p50": round(each["p50_ms"] / one["p50_ms"], 2) if one["p50_ms"] else None,
    }


def render(result: dict[str, Any]) -> str:
    one, each = result["one_transaction"], result["one_per_event"]
    return (
        f"  recording one flush (3 events), same run: one transaction p50 {one['p50_ms']:.1f}"
        f" / p99 {one['p99_ms']:.1f} ms, one per event p50 {each['p50_ms']:.1f}"
        f" / p99 {each['p99_ms']:.1f} ms ({result['ratio_p50']}x)"
    )
