"""The quiet side of the `flow` part's API variants: creating tasks through the API,
and reading from the store and from Temporal when and where each one went."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.context import BenchContext
from bench.procs import ChildProcess
from schemas.workflow import workflow_id_for

FIRST_EVENT = """
SELECT task_id, min(recorded_at) FROM events
WHERE task_id = ANY(%s) AND event_type = %s GROUP BY task_id
"""


async def first_steps(
    ctx: BenchContext, sent: dict[str, float], event_type: str = "task.step.started.v1"
) -> dict[str, float]:
    """Seconds from each task's `POST` to its first `event_type`."""
    async with ctx.pool.connection() as conn:
        rows = await (await conn.execute(FIRST_EVENT, (list(sent), event_type))).fetchall()
    return {str(t): at.timestamp() - sent[str(t)] for t, at in rows}


async def history_after(
    client: Client, task_id: str, sent_at: float
) -> AsyncIterator[tuple[str, float]]:
    """A task's Temporal history, in order: each event's name (`WORKFLOW_TASK_STARTED`)
    and its time in seconds after `sent_at` (the server's clock, this machine's)."""
    handle = client.get_workflow_handle(workflow_id_for(task_id))
    async for event in handle.fetch_history_events():
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        yield name, event.event_time.ToDatetime(tzinfo=UTC).timestamp() - sent_at


async def timeline(ctx: BenchContext, task_id: str, sent_at: float) -> list[str]:
    """The first Temporal history events of one task, ms after its `POST`: where it waited."""
    lines: list[str] = []
    async for name, after in history_after(ctx.client, task_id, sent_at):
        lines.append(f"{after * 1000:.0f} {name}")
        if len(lines) >= 16:
            break
    return lines


async def create_task(
    http: httpx.AsyncClient, seconds: float, sent: dict[str, float], answered: list[float]
) -> str:
    began = time.time()
    body = {"type": "demo.pipeline", "input": {"steps": 1, "step_seconds": seconds}}
    response = await http.post("/tasks", json=body)
    response.raise_for_status()
    sent[str(response.json()["task_id"])] = began
    answered.append(time.time() - began)
    return str(response.json()["task_id"])


async def warm_up(ctx: BenchContext, base_url: str, key: str, *children: ChildProcess) -> None:
    """One task of a third tenant, to its first step, before anything is measured.

    A fresh API process answers its first `POST /tasks` slower than the next ones (21-23
    ms against 5-6 on session 16's machine, ~20 against ~12 on session 17's). Without
    this the idle baseline's p99 was that one cold task (session 16): a cost of a new
    process, not of an idle system, which the flood variants never paid (the noisy
    tenant's requests warmed their API first). Should the task not step in time, the
    error says where it stood: its Temporal history, its stored events, the children's logs.
    """
    sent: dict[str, float] = {}
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        task_id = await create_task(http, 0.0, sent, [])
    for _ in range(300):
        if await first_steps(ctx, sent):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(
        f"the warm-up task {task_id} did not reach its first step in 15 s\n"
        + await where_it_stands(ctx, task_id, sent[task_id], children)
    )


STORED_EVENTS = "SELECT seq, event_type, recorded_at FROM events WHERE task_id = %s ORDER BY 1"


async def where_it_stands(
    ctx: BenchContext, task_id: str, sent_at: float, children: Sequence[ChildProcess]
) -> str:
    """A stuck task's Temporal history and stored events, and the tails of the logs."""
    lines = ["Temporal history (ms after POST):"]
    try:
        lines += await timeline(ctx, task_id, sent_at)
    except Exception as error:  # a report of a failure: it says what it met
        lines.append(f"  not read: {error!r}")
    async with ctx.pool.connection() as conn:
        rows = await (await conn.execute(STORED_EVENTS, (task_id,))).fetchall()
    lines.append("stored events (ms after POST):")
    lines += [f"{seq} {kind} {(at.timestamp() - sent_at) * 1000:.0f}" for seq, kind, at in rows]
    for child in children:
        lines += [f"{child.module}'s log ({child.log_path}):", child.log_tail()]
    return "\n".join(lines)
