"""`open_task` and `close_task` repeat safely (real Postgres and Redis): a retried
opening records `task.created.v1` and a parked task's line once and answers the same
claim; a retried closing records the terminal event once and the slot stays given
back. Temporal retries a local activity with the same input, so this is what a worker
that lost an attempt's completion after its commit sees."""

from __future__ import annotations

import uuid

import orjson
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment

from activities.admission import AdmissionActivities, Waker
from activities.opening import OpeningActivities
from activities.recorder import EventRecorder
from schemas.admission import AdmissionRelease, AdmissionRequest
from schemas.opening import ParkedLine, TaskClosing, TaskOpening
from schemas.workflow import RecordEventInput
from store import EventStore
from store.admission import AdmissionStore


async def test_a_repeated_opening_and_closing_record_each_event_once(
    temporal_address: str, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    store = AdmissionStore(pool, {})
    opening = OpeningActivities(recorder, AdmissionActivities(store, Waker(client, store)))
    task_id = str(uuid.uuid4())
    key = f"opening-{uuid.uuid4().hex[:8]}"
    request = TaskOpening(
        created=RecordEventInput(
            event_id=str(uuid.uuid4()),
            task_id=task_id,
            event_type="task.created.v1",
            data={"task_type": "demo.pipeline", "input": {}, "owner": "acme"},
        ),
        admission=AdmissionRequest(
            task_id=task_id,
            task_type="demo.pipeline",
            concurrency_key=key,
            tenant="acme",
            limit=1,
        ),
        parked=ParkedLine(
            position=3,
            queued_event_id=str(uuid.uuid4()),
            admitted_event_id=str(uuid.uuid4()),
            waited_seconds=1.23456,
        ),
    )
    env = ActivityEnvironment()
    first = await env.run(opening.open_task, request)
    again = await env.run(opening.open_task, request)
    assert first.decision is not None
    assert first.decision.outcome == "admitted"
    assert again.decision == first.decision
    assert first.parked_recorded
    assert again.parked_recorded
    assert (first.created.duplicate, again.created.duplicate) == (False, True)

    closing = TaskClosing(
        ending=RecordEventInput(
            event_id=str(uuid.uuid4()),
            task_id=task_id,
            event_type="task.completed.v1",
            data={"result": {"steps": 0}},
        ),
        release=AdmissionRelease(task_id=task_id),
    )
    assert not (await env.run(opening.close_task, closing)).duplicate
    assert (await env.run(opening.close_task, closing)).duplicate

    events = [orjson.loads(e.envelope_json) for e in await EventStore(pool).history(task_id)]
    assert [(e["type"], e["sequence"]) for e in events] == [
        ("task.created.v1", 1),
        ("task.queued.v1", 2),
        ("task.admitted.v1", 3),
        ("task.completed.v1", 4),
    ]
    assert events[1]["data"]["position"] == 3
    assert events[2]["data"]["waited_seconds"] == 1.235
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM admission_tickets WHERE concurrency_key = %s", (key,)
        )
        assert await cursor.fetchone() == (0,)
