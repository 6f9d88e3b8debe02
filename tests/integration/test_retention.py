"""Retention on a real Postgres (a database of each test's own: pruning with a short
retention would take the session's other tests' tasks): every table pruned as set,
open tasks untouched, a late event racing the pruning refused, `taskplane prune`."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from schemas import EventEnvelope
from store import EventStore, TaskReader, open_pool
from store.events import TaskPrunedError
from store.processed import ProcessedEvents
from store.retention import prune_closed_batch
from store.tenants import TaskOwners
from tests.own_database import own_database
from tests.polling import until
from webhooks.store import WebhookStore
from worker.pruner import Pruner, RetentionPolicy

DAY = 86_400.0
CONSUMERS = ("webhooks", "audit")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[tuple[str, AsyncConnectionPool]]:
    async with own_database(database_url, "retention") as url:
        pool = await open_pool(url, min_size=1, max_size=6)
        try:
            yield url, pool
        finally:
            await pool.close()


def _event(task_id: str, event_type: str, data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        id=str(uuid.uuid4()), type=event_type, subject=task_id, time=datetime.now(UTC), data=data
    )


def _step(task_id: str, kind: str, **data: Any) -> EventEnvelope:
    return _event(
        task_id, f"task.step.{kind}.v1", {"index": 1, "name": "s", "total_steps": 1, **data}
    )


async def _task(pool: AsyncConnectionPool, *, closed: bool, age_days: float = 40) -> str:
    """A task as the API, the recorder and the durable handlers leave it: owner row,
    webhook, events with outbox rows, processed marks and webhook deliveries; closed or
    not; every time `age_days` in the past."""
    task_id = str(uuid.uuid4())
    assert await TaskOwners(pool).claim(task_id, "default") == "default"
    await WebhookStore(pool).subscribe(
        task_id,
        url="https://hooks.example/t",
        secret="whsec_test",
        secret_generated=True,
        event_types=None,
        request_hash="h",
    )
    store = EventStore(pool)
    events = [
        _event(task_id, "task.created.v1", {"task_type": "demo.pipeline", "input": {}}),
        _step(task_id, "started", attempt=1),
        _step(task_id, "progress", percent=50.0),
    ]
    if closed:
        events.append(_event(task_id, "task.completed.v1", {"result": {"ok": True}}))
    processed = ProcessedEvents(pool)
    for envelope in events:
        await store.append(envelope)  # its webhook delivery too: the recording statement
        for consumer in CONSUMERS:
            async with processed.first_time(consumer, envelope.id) as conn:
                assert conn is not None
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE tasks SET created_at = now() - make_interval(days => %(d)s),"
            " updated_at = now() - make_interval(days => %(d)s) WHERE task_id = %(t)s",
            {"d": age_days, "t": task_id},
        )
        # The partition key follows (no partition that old: they go to `events_default`).
        await conn.execute(
            "UPDATE events e SET task_created_at = t.created_at FROM tasks t"
            " WHERE t.task_id = e.task_id AND e.task_id = %s",
            (task_id,),
        )
        await conn.execute(
            "UPDATE outbox SET published_at = now() - make_interval(days => %s) WHERE task_id = %s",
            (age_days, task_id),
        )
    return task_id


async def _rows(pool: AsyncConnectionPool, task_id: str) -> dict[str, int]:
    """The task's rows in every table the pruner deletes from."""
    queries = {
        "tasks": "SELECT count(*) FROM tasks WHERE task_id = %(t)s",
        "events": "SELECT count(*) FROM events WHERE task_id = %(t)s",
        "outbox": "SELECT count(*) FROM outbox WHERE task_id = %(t)s",
        "processed_events": "SELECT count(*) FROM processed_events p"
        " JOIN events e USING (event_id) WHERE e.task_id = %(t)s",
        "webhook_deliveries": "SELECT count(*) FROM webhook_deliveries WHERE task_id = %(t)s",
        "webhook_endpoints": "SELECT count(*) FROM webhook_endpoints WHERE task_id = %(t)s",
        "task_owners": "SELECT count(*) FROM task_owners WHERE task_id = %(t)s",
        "pruned_tasks": "SELECT count(*) FROM pruned_tasks WHERE task_id = %(t)s",
    }
    counts = {}
    async with pool.connection() as conn:
        for table, query in queries.items():
            cursor = await conn.execute(query, {"t": task_id})
            row = await cursor.fetchone()
            assert row is not None
            counts[table] = int(row[0])
    return counts


async def _total(pool: AsyncConnectionPool, query: str) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(query)
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def _unknown(task_id: str) -> bool:
    raise AssertionError(f"asked Temporal about {task_id}: no orphan here")


def _policy(**overrides: Any) -> RetentionPolicy:
    return RetentionPolicy(**{"closed_tasks_seconds": 30 * DAY, "batch_size": 2, **overrides})


async def test_a_round_prunes_every_table_of_closed_tasks_and_leaves_open_ones(
    db: tuple[str, AsyncConnectionPool],
) -> None:
    _, pool = db
    old_closed = [await _task(pool, closed=True) for _ in range(3)]  # 2 batches of 2
    recent_closed = await _task(pool, closed=True, age_days=1)
    old_open = await _task(pool, closed=False, age_days=400)
    whole = await _rows(pool, old_closed[0])
    assert whole == {
        "tasks": 1,
        "events": 4,
        "outbox": 4,
        "processed_events": 8,
        "webhook_deliveries": 4,
        "webhook_endpoints": 1,
        "task_owners": 1,
        "pruned_tasks": 0,
    }
    kept = {task_id: await _rows(pool, task_id) for task_id in (recent_closed, old_open)}

    pruner = Pruner(pool, _unknown, _policy(outbox_published_seconds=1000 * DAY))
    counts = await pruner.round()

    assert counts is not None
    assert sorted(counts.task_ids) == sorted(old_closed)
    assert counts.by_table() == {
        "processed_events": 24,
        "webhook_deliveries": 12,
        "webhook_endpoints": 3,
        "outbox": 12,
        "events": 12,
        "task_owners": 3,
        "unstarted_tasks": 0,
        "tasks": 3,
        "pruned_tasks": 0,
    }
    for task_id in old_closed:
        assert await _rows(pool, task_id) == {**dict.fromkeys(whole, 0), "pruned_tasks": 1}
    for task_id, rows in kept.items():
        assert await _rows(pool, task_id) == rows  # open whatever its age; closed recently
    assert pruner.stats.rows["events"] == 12
    assert pruner.stats.last_run is not None
    assert await pruner.round() is not None
    assert pruner.stats.rows["events"] == 12  # nothing more to prune


async def test_published_outbox_rows_go_after_their_retention_pending_ones_stay(
    db: tuple[str, AsyncConnectionPool],
) -> None:
    _, pool = db
    task_id = await _task(pool, closed=False, age_days=0)  # 3 rows, published "now"
    async with pool.connection() as conn:
        # One published two hours ago, one an hour and a half ago, one never published.
        await conn.execute(
            "UPDATE outbox SET published_at = now() - interval '2 hours' WHERE seq = 1"
            " AND task_id = %s",
            (task_id,),
        )
        await conn.execute(
            "UPDATE outbox SET published_at = now() - interval '90 minutes' WHERE seq = 2"
            " AND task_id = %s",
            (task_id,),
        )
        await conn.execute(
            "UPDATE outbox SET published_at = NULL WHERE seq = 3 AND task_id = %s", (task_id,)
        )
    pruner = Pruner(pool, _unknown, _policy(outbox_published_seconds=3600, batch_size=1))
    counts = await pruner.round()
    assert counts is not None
    assert counts.rows["outbox"] == 2
    left = await _total(pool, f"SELECT count(*) FROM outbox WHERE task_id = '{task_id}'")
    pending = await _total(pool, f"SELECT min(seq) FROM outbox WHERE task_id = '{task_id}'")
    assert (left, pending) == (1, 3)  # the one never published
    assert (await _rows(pool, task_id))["events"] == 3  # the events stay with their task


async def test_a_pruned_task_takes_no_event_and_its_id_cannot_be_claimed(
    db: tuple[str, AsyncConnectionPool],
) -> None:
    _, pool = db
    task_id = await _task(pool, closed=True)
    await Pruner(pool, _unknown, _policy()).round()
    store = EventStore(pool)
    with pytest.raises(TaskPrunedError):
        await store.append(_step(task_id, "progress", percent=99.0))
    with pytest.raises(TaskPrunedError):  # a reset run's first event: the same refusal
        await store.append(_step(task_id, "started", attempt=1), run_id="another-run")
    assert await TaskReader(pool).get(task_id) is None
    assert await TaskOwners(pool).claim(task_id, "default") is None
    assert (await _rows(pool, task_id))["task_owners"] == 0


async def _waiting_on_a_lock(pool: AsyncConnectionPool, fragment: str) -> bool:
    """Whether a backend of this database waits on a lock in a statement with `fragment`."""
    return bool(
        await _total(
            pool,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            f" AND wait_event_type = 'Lock' AND query LIKE '%{fragment}%'",
        )
    )


async def test_a_late_event_racing_the_pruning_does_not_bring_back_half_a_task(
    db: tuple[str, AsyncConnectionPool],
) -> None:
    """The pruner holds the task (its rows deleted, tombstone written, not committed);
    a late event of it is recorded now: it waits for the pruner's commit, then finds
    no row and makes one — which the trigger refuses, having seen the tombstone."""
    _, pool = db
    task_id = await _task(pool, closed=True)
    store = EventStore(pool)
    async with pool.connection() as conn, conn.transaction():
        pruned = await prune_closed_batch(conn, keep_seconds=30 * DAY, limit=10)
        assert pruned.task_ids == [task_id]
        late = asyncio.create_task(store.append(_step(task_id, "progress", percent=99.0)))
        await until(
            lambda: _waiting_on_a_lock(pool, "INSERT INTO tasks"),
            within=30,
            what="the late event waiting for the pruner's commit",
        )
        assert not late.done()
    # The pruning committed: the late event goes on, and is refused.
    with pytest.raises(TaskPrunedError):
        await late
    rows = await _rows(pool, task_id)
    assert rows == {**dict.fromkeys(rows, 0), "pruned_tasks": 1}


async def test_the_pruner_skips_a_task_a_recorder_holds_and_never_waits_for_it(
    db: tuple[str, AsyncConnectionPool],
) -> None:
    _, pool = db
    held, free = await _task(pool, closed=True), await _task(pool, closed=True)
    async with pool.connection() as recorder, recorder.transaction():
        # What the recording statement holds while it runs: the task's row.
        await recorder.execute("SELECT 1 FROM tasks WHERE task_id = %s FOR UPDATE", (held,))
        async with pool.connection() as conn, conn.transaction():
            batch = await prune_closed_batch(conn, keep_seconds=30 * DAY, limit=10)
        assert batch.task_ids == [free]
    assert (await _rows(pool, held))["events"] == 4
    counts = await Pruner(pool, _unknown, _policy()).round()
    assert counts is not None
    assert counts.task_ids == [held]


def _run_cli(url: str, *args: str) -> tuple[int, str]:
    import subprocess

    env = {
        **os.environ,
        "TASKPLANE_DATABASE_URL": url,
        "TASKPLANE_LOG_LEVEL": "WARNING",
        "TASKPLANE_RETENTION_OUTBOX_PUBLISHED_SECONDS": "3600",  # the setting is honoured
    }
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "prune", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout


def _table(output: str) -> dict[str, int]:
    rows = {}
    for line in output.splitlines()[1:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            rows[parts[0]] = int(parts[1])
    return rows


async def test_taskplane_prune_dry_run_counts_what_the_real_run_deletes(
    db: tuple[str, AsyncConnectionPool],
) -> None:
    url, pool = db
    old = [await _task(pool, closed=True, age_days=10) for _ in range(2)]
    young = await _task(pool, closed=True, age_days=1)
    open_task = await _task(pool, closed=False, age_days=40)
    before = {t: await _rows(pool, t) for t in (*old, young, open_task)}

    code, output = await asyncio.to_thread(_run_cli, url, "--closed-before", "5d", "--dry-run")
    assert code == 0, output
    assert "would delete" in output
    would = _table(output)
    assert would["tasks"] == 2
    assert would["events"] == 8
    assert would["processed_events"] == 16
    assert would["webhook_deliveries"] == 8
    # The two old tasks' outbox rows, and every row published longer ago than an hour
    # (the setting): the young and the open task's, backdated by `_task`.
    assert would["outbox"] == 8 + 4 + 3
    assert {t: await _rows(pool, t) for t in before} == before  # nothing deleted

    code, output = await asyncio.to_thread(_run_cli, url, "--closed-before", "5d")
    assert code == 0, output
    assert _table(output) == would
    for task_id in old:
        assert (await _rows(pool, task_id))["pruned_tasks"] == 1
    assert (await _rows(pool, young))["tasks"] == 1
    assert (await _rows(pool, open_task))["events"] == 3

    code, output = await asyncio.to_thread(_run_cli, url, "--closed-before", "5d", "--dry-run")
    assert set(_table(output).values()) == {0}
