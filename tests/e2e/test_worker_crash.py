"""Killing a worker never loses or repeats an event.

Each test runs its own worker and API processes (they get killed), on the
session's real Postgres, Redis and Temporal, and reads the task's SSE stream
across the crash.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.registry import is_terminal
from tests.e2e.conftest import ProcessStack, running_stack
from tests.polling import until
from tests.sse import Frame, collect_events, payload

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_stack(services: Any, tmp_path: Path) -> Iterator[ProcessStack]:
    with running_stack(services, tmp_path, worker_shutdown_grace_seconds="8") as stack:
        yield stack


@pytest.fixture
async def http(own_stack: ProcessStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=own_stack.base_url, timeout=30) as client:
        yield client


def assert_exactly_once(frames: list[Frame]) -> list[dict[str, Any]]:
    events = [payload(f) for f in frames]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["id"] for e in events}) == len(events)
    assert sum(is_terminal(e["type"]) for e in events) == 1
    assert is_terminal(events[-1]["type"])
    # No occurrence recorded twice: (type, step, attempt, percent) is unique.
    keys = Counter(
        (e["type"], e["data"].get("index"), e["data"].get("attempt"), e["data"].get("percent"))
        for e in events
    )
    assert max(keys.values()) == 1, keys.most_common(3)
    return events


async def wait_for_event(http: httpx.AsyncClient, task_id: str, predicate: Any) -> None:
    async def came() -> bool:
        page = (await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()
        return any(predicate(e) for e in page["events"])

    await until(came, within=15, what="the event")


async def start_watched_task(
    http: httpx.AsyncClient, task_input: dict[str, Any]
) -> tuple[str, asyncio.Task[tuple[int, list[Frame]]]]:
    """Create a demo task and start reading its whole SSE stream in the background."""
    created = await http.post("/tasks", json={"type": "demo.pipeline", "input": task_input})
    task_id = created.json()["task_id"]
    stream = asyncio.create_task(collect_events(http, f"/tasks/{task_id}/events", read_timeout=120))
    return task_id, stream


async def test_sigterm_drains_the_running_step_then_another_worker_finishes(
    own_stack: ProcessStack, http: httpx.AsyncClient
) -> None:
    task_id, stream = await start_watched_task(
        http, {"steps": 2, "step_seconds": 2, "progress_ticks": 4}
    )
    await wait_for_event(http, task_id, lambda e: e["type"] == "task.step.started.v1")
    worker = own_stack.processes["worker"]
    began = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(worker.wait, 30)
    drained_in = time.monotonic() - began
    own_stack.processes.pop("worker")
    assert code == 0, own_stack.log_tail("worker")
    assert drained_in < 8 + 5  # the grace period, plus start-up slack
    # The running step finished during the drain rather than being abandoned.
    history = (await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()["events"]
    assert ("task.step.completed.v1", 1) in {(e["type"], e["data"].get("index")) for e in history}
    own_stack.start("worker")
    _, frames = await stream
    events = assert_exactly_once(frames)
    assert events[-1]["type"] == "task.completed.v1"
    assert [e["data"]["attempt"] for e in events if e["type"] == "task.step.started.v1"] == [1, 1]


async def test_sigkill_mid_step_then_restart_loses_and_repeats_nothing(
    own_stack: ProcessStack, http: httpx.AsyncClient
) -> None:
    task_id, stream = await start_watched_task(
        http, {"steps": 3, "step_seconds": 1, "progress_ticks": 4}
    )
    await wait_for_event(
        http, task_id, lambda e: e["type"] == "task.step.progress.v1" and e["data"]["index"] == 2
    )
    own_stack.stop("worker", kill=True)
    own_stack.start("worker")
    _, frames = await stream
    events = assert_exactly_once(frames)
    assert events[-1]["type"] == "task.completed.v1"
    step2 = [(e["type"], e["data"].get("attempt")) for e in events if e["data"].get("index") == 2]
    assert step2[0] == ("task.step.started.v1", 1)
    assert ("task.step.failed.v1", 1) in step2  # the lost attempt is accounted for
    assert ("task.step.started.v1", 2) in step2
    assert step2[-1][0] == "task.step.completed.v1"
    task = (await http.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "completed"
