"""What a task waits for, from its events on a real Postgres (store/inputs.py), and the
one use of an input link."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from schemas import EventEnvelope
from store import EventStore
from store.inputs import TaskInputs


def event(task_id: str, event_type: str, data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        id=str(uuid.uuid4()), type=event_type, subject=task_id, time=datetime.now(UTC), data=data
    )


def requested(task_id: str, name: str) -> EventEnvelope:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    return event(
        task_id,
        "task.input.requested.v1",
        {"name": name, "input_schema": schema, "deadline": None, "prompt": f"{name}?"},
    )


def received(task_id: str, name: str, **data: Any) -> EventEnvelope:
    return event(task_id, "task.input.received.v1", {"name": name, **data})


async def test_waiting_inputs_follow_requests_answers_resets_and_the_end(
    pool: AsyncConnectionPool,
) -> None:
    store, inputs = EventStore(pool), TaskInputs(pool)
    task_id = str(uuid.uuid4())
    await store.append(
        event(task_id, "task.created.v1", {"task_type": "demo.approval", "input": {}})
    )
    assert await inputs.waiting_inputs(task_id) == []
    await store.append(requested(task_id, "approve"))
    await store.append(requested(task_id, "budget"))
    waiting = await inputs.waiting_inputs(task_id)
    assert [(w.name, w.prompt, w.sequence) for w in waiting] == [
        ("approve", "approve?", 2),
        ("budget", "budget?", 3),
    ]
    assert waiting[0].input_schema["properties"] == {"ok": {"type": "boolean"}}
    await store.append(received(task_id, "approve", value={"ok": True}, delivery_id="d-1"))
    assert [w.name for w in await inputs.waiting_inputs(task_id)] == ["budget"]
    assert len(await inputs.waiting_inputs(task_id, as_of=3)) == 2  # as a snapshot at 3 saw
    [delivery] = await inputs.received(task_id, "approve")
    assert (delivery.value, delivery.delivery_id, delivery.sequence) == ({"ok": True}, "d-1", 4)
    await store.append(received(task_id, "budget", timed_out=True))
    assert await inputs.waiting_inputs(task_id) == []
    await store.append(requested(task_id, "approve"))  # a second round, same name
    assert [w.sequence for w in await inputs.waiting_inputs(task_id)] == [6]
    await store.append(event(task_id, "task.failed.v1", {"error": "gave up"}))
    assert await inputs.waiting_inputs(task_id) == []  # an ended task waits for nothing


async def test_an_input_link_is_used_once_unless_given_back(pool: AsyncConnectionPool) -> None:
    inputs = TaskInputs(pool)
    link, task_id = f"link-{uuid.uuid4()}", str(uuid.uuid4())
    expires = datetime.now(UTC) + timedelta(hours=1)
    assert not await inputs.link_used(link)
    assert await inputs.claim_link(link, task_id=task_id, name="approve", expires_at=expires)
    assert not await inputs.claim_link(link, task_id=task_id, name="approve", expires_at=expires)
    assert await inputs.link_used(link)
    await inputs.release_link(link)
    assert await inputs.claim_link(link, task_id=task_id, name="approve", expires_at=expires)
