"""Output streams, live metadata and the snapshot, on real servers and through crashes.

The answer `demo.chat` streams into its `answer` output, read back from the SSE stream
by the CLI's follower (it resumes with `Last-Event-ID`), equals the task's result even
when the API restarts and the worker is SIGKILLed mid-stream; and a subscriber that
arrives late gets, as its first frame, the state that folding the whole history gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cli.watch import follow
from schemas.chat import ANSWER_STREAM, CHAT_MODEL
from schemas.live_fold import fold
from tests.e2e.conftest import ProcessStack, running_stack
from tests.polling import until
from tests.sse import SNAPSHOT, read_frames

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_stack(services: Any, tmp_path: Path) -> Iterator[ProcessStack]:
    with running_stack(services, tmp_path, worker_shutdown_grace_seconds="2") as stack:
        yield stack


@pytest.fixture
async def http(own_stack: ProcessStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=own_stack.base_url, timeout=30) as client:
        yield client


async def history(http: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = (await http.get(f"/tasks/{task_id}/history", params={"after": after})).json()
        events += page["events"]
        if not page["events"]:
            return events
        after = page["next_after"]


async def output_chunks(http: httpx.AsyncClient, task_id: str, attempt: int) -> int:
    events = await history(http, task_id)
    return sum(
        1 for e in events if e["type"] == "task.output.v1" and e["data"]["attempt"] == attempt
    )


def followed(base_url: str, task_id: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return list(follow(client, task_id, give_up_after=60))


async def test_streamed_answer_equals_the_result_across_api_restart_and_worker_sigkill(
    own_stack: ProcessStack, http: httpx.AsyncClient
) -> None:
    created = await http.post(
        "/tasks",
        json={"type": "demo.chat", "input": {"tokens": 300, "token_seconds": 0.04}},
    )
    assert created.status_code == 202, created.text
    task_id = created.json()["task_id"]
    watcher = asyncio.create_task(asyncio.to_thread(followed, own_stack.base_url, task_id))

    async def attempt_wrote(attempt: int, chunks: int) -> None:
        async def wrote() -> bool:
            return await output_chunks(http, task_id, attempt) >= chunks

        await until(wrote, within=60, what=f"{chunks} output chunks of attempt {attempt}")

    await attempt_wrote(1, 3)
    own_stack.stop("worker", kill=True)  # attempt 1 dies mid-answer
    own_stack.stop("api")  # the watcher's connection drops mid-stream
    own_stack.start("api")
    own_stack.start("worker")  # attempt 2 starts once attempt 1's heartbeat times out
    await asyncio.to_thread(own_stack.wait_ready)
    events = await asyncio.wait_for(watcher, 120)

    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "task.completed.v1", events[-1]
    result = events[-1]["data"]["result"]
    state = fold(events)
    assert (1, 1) in state.failed_attempts  # attempt 1's output is marked as not final
    assert any(chunk[2] == 1 for chunk in state.chunks)  # …and some of it was streamed
    assert state.output_text(ANSWER_STREAM) == result["answer"]
    # Each attempt's chunks are contiguous: no chunk lost or repeated inside an attempt.
    for attempt in {chunk[2] for chunk in state.chunks}:
        chunks = [
            e["data"]
            for e in events
            if e["type"] == "task.output.v1" and e["data"]["attempt"] == attempt
        ]
        offsets = [sum(len(c["text"]) for c in chunks[:n]) for n in range(len(chunks))]
        assert [c["offset"] for c in chunks] == offsets
    assert state.metadata == {"tokens": 300, "model": CHAT_MODEL}
    task = (await http.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "completed"
    assert task["metadata"] == state.metadata
    assert task["outputs"] == {ANSWER_STREAM: {"length": len(result["answer"])}}
    assert task["last_sequence"] == events[-1]["sequence"]


async def first_frame(http: httpx.AsyncClient, path: str) -> tuple[str | None, str | None, Any]:
    async with http.stream("GET", path) as response:
        assert response.status_code == 200
        async for frame in read_frames(response, snapshot=True):
            if frame.is_event:
                return frame.event, frame.id, orjson.loads(frame.data)
    raise AssertionError("the stream ended without a frame")


async def test_a_late_subscriber_gets_the_state_the_whole_history_folds_to(
    http: httpx.AsyncClient,
) -> None:
    created = await http.post(
        "/tasks", json={"type": "demo.chat", "input": {"tokens": 400, "token_seconds": 0.02}}
    )
    task_id = created.json()["task_id"]

    async def streaming() -> bool:
        return (await output_chunks(http, task_id, 1)) >= 5

    await until(streaming, within=30, what="the answer streaming")
    event, frame_id, snapshot = await first_frame(http, f"/tasks/{task_id}/events?history=false")
    assert (event, frame_id) == (SNAPSHOT, None)  # no id: Last-Event-ID is left alone
    assert snapshot["status"] == "running"
    events = [e for e in await history(http, task_id) if e["sequence"] <= snapshot["last_sequence"]]
    state = fold(events)
    assert snapshot["metadata"] == state.metadata
    assert snapshot["metadata"]["model"] == CHAT_MODEL
    assert snapshot["outputs"] == {k: {"length": n} for k, n in state.output_lengths().items()}
    assert snapshot["outputs"][ANSWER_STREAM]["length"] > 0
    assert snapshot["progress"] == pytest.approx(state.progress)
    assert snapshot["status"] == state.status
    assert snapshot["waiting_inputs"] == []
    # `?snapshot=false`: the stream starts with the first event, as before.
    event, frame_id, first = await first_frame(http, f"/tasks/{task_id}/events?snapshot=false")
    assert (event, frame_id, first["sequence"]) == ("task.created.v1", "1", 1)
    assert (await http.post(f"/tasks/{task_id}/cancel")).status_code == 202
