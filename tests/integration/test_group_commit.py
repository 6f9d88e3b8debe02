"""Group commit on real Postgres and Redis (activities/group_commit.py): recordings that
queue while one is in flight share one transaction and one publish, and each still
meets exactly its own outcome."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool

from activities.recorder import EventRecorder
from broker import topic_for
from broker.redis import RedisBroker
from schemas.workflow import RecordEventResult
from store import EventStore, Outbox
from store.events import ChapterClosedError, TaskPrunedError
from tests.invariants import find_violations, load_history


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    the_broker = RedisBroker(redis_url, client_name="taskplane-group-test")
    await the_broker.connect()
    yield the_broker
    await the_broker.close()


def _recorder(
    pool: AsyncConnectionPool, broker: RedisBroker, max_group: int, in_flight: int = 1
) -> EventRecorder:
    """One commit in flight unless told: which recordings group is then exact."""
    return EventRecorder(
        EventStore(pool), Outbox(pool), broker, max_group=max_group, commits_in_flight=in_flight
    )


async def _record(
    recorder: EventRecorder,
    task_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    run_id: str | None = None,
    event_id: str | None = None,
) -> RecordEventResult:
    return await recorder.record(
        event_id=event_id or str(uuid.uuid4()),
        task_id=task_id,
        event_type=event_type,
        data=data,
        run_id=run_id,
    )


async def _created(recorder: EventRecorder, run_id: str | None = None) -> str:
    task_id = str(uuid.uuid4())
    data = {"task_type": "demo.pipeline", "input": {}}
    await _record(recorder, task_id, "task.created.v1", data, run_id=run_id)
    return task_id


def _started(index: int) -> tuple[str, dict[str, Any]]:
    return "task.step.started.v1", {"index": index, "name": f"step-{index}", "attempt": 1}


def _counts(recorder: EventRecorder) -> tuple[int, int, int]:
    assert recorder.groups is not None
    return recorder.groups.groups, recorder.groups.grouped, recorder.groups.fallbacks


async def test_concurrent_recordings_share_a_commit_each_once_in_order_and_published(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    recorder = _recorder(pool, broker, max_group=32)
    tasks = [await _created(recorder) for _ in range(6)]
    assert _counts(recorder) == (0, 0, 0)  # one at a time: each straight through, alone
    async with AsyncExitStack() as stack:
        subs = [await stack.enter_async_context(broker.subscribe(topic_for(t))) for t in tasks]
        # Three rounds of one event per task, all at once: the first goes alone, the
        # others queue behind it and go as groups.
        for index in (1, 2, 3):
            results = await asyncio.gather(
                *(_record(recorder, task_id, *_started(index)) for task_id in tasks)
            )
            assert [(r.sequence, r.duplicate) for r in results] == [(index + 1, False)] * 6
        received = []
        for sub in subs:
            for _ in range(3):
                delivery = await sub.get(timeout=5)
                assert delivery is not None
                assert delivery.payload is not None
                received.append(orjson.loads(delivery.payload))
    groups, grouped, fallbacks = _counts(recorder)
    assert groups >= 3
    assert grouped >= 3 * 5
    assert fallbacks == 0
    history = await load_history(pool, tasks)
    assert len(history) == 6 * 4
    assert find_violations(history, tasks=tasks, require_terminal=False) == []
    # Every event published once, its stored sequence spliced in.
    stored = {(e.event_id, e.sequence) for e in history if e.type != "task.created.v1"}
    assert {(e["id"], e["sequence"]) for e in received} == stored
    await recorder.flush_marks()
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM outbox WHERE task_id = ANY(%s) AND published_at IS NULL",
            (tasks,),
        )
        assert await cursor.fetchone() == (0,)


async def test_a_refused_event_fails_only_its_own_caller_and_the_rest_commit_together(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    recorder = _recorder(pool, broker, max_group=32)
    run = str(uuid.uuid4())
    open_task, closed_task = await _created(recorder, run), await _created(recorder, run)
    await _record(recorder, closed_task, "task.completed.v1", {"result": {}}, run_id=run)
    other = await _created(recorder, run)

    outcomes = await asyncio.gather(
        _record(recorder, other, *_started(1), run_id=run),  # alone: nothing in flight
        _record(recorder, open_task, *_started(1), run_id=run),
        _record(recorder, closed_task, *_started(1), run_id=run),  # after its terminal event
        _record(recorder, other, *_started(2), run_id=run),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], ChapterClosedError)
    fine = [o for i, o in enumerate(outcomes) if i != 2 and isinstance(o, RecordEventResult)]
    assert [(o.sequence, o.duplicate) for o in fine] == [(2, False), (2, False), (3, False)]
    # The group behind the first committed its two plain events; the refused one (took
    # nothing there) went alone.
    assert _counts(recorder) == (1, 2, 0)
    tasks = [open_task, closed_task, other]
    history = await load_history(pool, tasks)
    assert find_violations(history, tasks=tasks, require_terminal=False) == []
    assert [e.type for e in history if e.task_id == closed_task] == [
        "task.created.v1",
        "task.completed.v1",
    ]


async def test_a_retry_in_a_group_is_told_a_duplicate_and_the_rest_still_commit(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    # An id that exists fails its statement (the raced guard: no probe of `events` before
    # the insert), so the group's transaction writes nothing and each goes alone.
    recorder = _recorder(pool, broker, max_group=32)
    open_task, other = await _created(recorder), await _created(recorder)
    again_id = str(uuid.uuid4())
    first = await _record(recorder, open_task, *_started(1), event_id=again_id)

    outcomes = await asyncio.gather(
        _record(recorder, other, *_started(1)),  # alone: nothing in flight
        _record(recorder, open_task, *_started(2)),
        _record(recorder, open_task, *_started(1), event_id=again_id),  # a retry
        _record(recorder, other, *_started(2)),
    )
    assert outcomes[2] == RecordEventResult(sequence=first.sequence, duplicate=True)
    assert [(o.sequence, o.duplicate) for i, o in enumerate(outcomes) if i != 2] == [
        (2, False),
        (3, False),
        (3, False),
    ]
    assert _counts(recorder) == (0, 0, 1)
    history = await load_history(pool, [open_task, other])
    assert find_violations(history, tasks=[open_task, other], require_terminal=False) == []
    assert len(history) == 3 + 3  # created and two steps each, the retry not again


async def test_a_failed_group_writes_nothing_and_each_recording_goes_alone(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    recorder = _recorder(pool, broker, max_group=32)
    tasks = [await _created(recorder) for _ in range(3)]
    pruned = str(uuid.uuid4())  # a tombstone and no row: its insert fails the transaction
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO pruned_tasks (task_id) VALUES (%s)", (pruned,))
    outcomes = await asyncio.gather(
        _record(recorder, tasks[0], *_started(1)),  # alone: nothing in flight
        _record(recorder, tasks[1], *_started(1)),
        _record(recorder, pruned, *_started(1)),
        _record(recorder, tasks[2], *_started(1)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], TaskPrunedError)
    assert [o.sequence for o in outcomes if isinstance(o, RecordEventResult)] == [2, 2, 2]
    assert _counts(recorder) == (0, 0, 1)
    history = await load_history(pool, [*tasks, pruned])
    assert find_violations(history, tasks=tasks, require_terminal=False) == []


async def test_a_new_run_in_a_group_begins_one_chapter(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    recorder = _recorder(pool, broker, max_group=32)
    old_run, new_run = str(uuid.uuid4()), str(uuid.uuid4())
    task_id = await _created(recorder, old_run)
    other = await _created(recorder, old_run)
    await asyncio.gather(
        _record(recorder, other, *_started(1), run_id=old_run),
        *(_record(recorder, task_id, *_started(i), run_id=new_run) for i in (1, 2, 3)),
    )
    history = await load_history(pool, [task_id])
    assert [e.type for e in history].count("task.reset.v1") == 1
    assert len(history) == 1 + 1 + 3
    assert find_violations(history, tasks=[task_id], require_terminal=False) == []


async def test_a_caller_cancelled_while_queued_records_nothing(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    recorder = _recorder(pool, broker, max_group=32)
    task_id = await _created(recorder)
    gone_id = str(uuid.uuid4())
    first = asyncio.create_task(_record(recorder, task_id, *_started(1)))
    await asyncio.sleep(0)  # in flight now
    gone = asyncio.create_task(_record(recorder, task_id, *_started(2), event_id=gone_id))
    await asyncio.sleep(0)  # queued behind it
    gone.cancel()
    kept = await _record(recorder, task_id, *_started(3))
    assert (await first).sequence == 2
    assert kept.sequence == 3
    with pytest.raises(asyncio.CancelledError):
        await gone
    history = await load_history(pool, [task_id])
    assert gone_id not in {e.event_id for e in history}


async def test_max_group_one_records_every_event_alone(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    recorder = _recorder(pool, broker, max_group=1)
    assert recorder.groups is None
    task_id = await _created(recorder)
    results = await asyncio.gather(*(_record(recorder, task_id, *_started(i)) for i in (1, 2)))
    assert sorted(r.sequence for r in results) == [2, 3]


class _HeldBroker(RedisBroker):
    """The real broker, whose publishes wait until `release` is set."""

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url, client_name="taskplane-group-held")
        self.release = asyncio.Event()
        self.waiting = 0
        self.two_held = asyncio.Event()

    async def publish(self, topic: str, payload: str) -> None:
        self.waiting += 1
        if self.waiting == 3:  # the created event's (let through), then two held
            self.two_held.set()
        await self.release.wait()
        await super().publish(topic, payload)


async def test_the_next_commit_does_not_wait_for_a_publish(
    pool: AsyncConnectionPool, redis_url: str
) -> None:
    held = _HeldBroker(redis_url)
    await held.connect()
    try:
        recorder = _recorder(pool, held, max_group=32)
        held.release.set()
        task_id = await _created(recorder)
        held.release.clear()
        first_id, second_id = str(uuid.uuid4()), str(uuid.uuid4())
        first = asyncio.create_task(_record(recorder, task_id, *_started(1), event_id=first_id))
        second = asyncio.create_task(_record(recorder, task_id, *_started(2), event_id=second_id))
        await held.two_held.wait()  # both committed, both publishes held
        stored = {e.event_id for e in await load_history(pool, [task_id])}
        assert {first_id, second_id} <= stored
        assert not first.done()
        assert not second.done()
        held.release.set()
        assert sorted([(await first).sequence, (await second).sequence]) == [2, 3]
    finally:
        await held.close()


async def test_with_two_in_flight_two_go_straight_through_and_the_rest_group(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    recorder = _recorder(pool, broker, max_group=32, in_flight=2)
    tasks = [await _created(recorder) for _ in range(6)]
    results = await asyncio.gather(*(_record(recorder, t, *_started(1)) for t in tasks))
    assert [r.sequence for r in results] == [2] * 6
    assert _counts(recorder) == (1, 4, 0)  # the first two alone, the four queued: one group
    history = await load_history(pool, tasks)
    assert find_violations(history, tasks=tasks, require_terminal=False) == []
