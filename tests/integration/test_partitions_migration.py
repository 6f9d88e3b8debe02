"""Migration 0009 on a database filled by the previous schema: migrated to 0008, filled
through the store's own append path (its statement as it was before 0009), then migrated;
every event, sequence, unique constraint and outbox row must come through, and appends go
on into partitions made ahead of time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

import store.events
from schemas import EventEnvelope
from store import EventStore, open_pool
from store.migrate import migrate, migration_files
from store.outbox import Outbox
from store.processed import ProcessedEvents
from webhooks.store import WebhookStore

_LEDGER = "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz)"
# Today's statement minus the partition key is the statement as 0008's store ran it (each
# piece must be found: a change to the statement shows here instead of passing unseen).
# The statement as sent: compacted (store/sql_text.py), one clause a line, no indentation.
_WITHOUT_PARTITION_KEY = (
    (", envelope, task_created_at)", ", envelope)"),
    ("'}',\ntask.created_at\n", "'}'\n"),
    ("ON CONFLICT (event_id, task_created_at)", "ON CONFLICT (event_id)"),
    # 0008's store probed for a duplicate id before the bump (it had no raced guard).
    (
        "RETURNING last_seq, created_at\n",
        "AND NOT EXISTS (SELECT FROM events e WHERE e.event_id = %(event_id)s)\n"
        "RETURNING last_seq\n",
    ),
    # The raced-duplicate guard calls a function of migration 0013: not there at 0008.
    (
        "WHERE (SELECT CASE WHEN EXISTS (SELECT FROM task) AND NOT EXISTS (SELECT FROM event)\n"
        "THEN taskplane_append_raced(%(event_id)s) ELSE 0 END) = 0\n",
        "",
    ),
)
_EVENTS = (
    "SELECT task_id, seq, event_id, event_type, recorded_at, envelope FROM events"
    " ORDER BY task_id, seq"
)


# `task.created.v1`'s statement only: its probe for an earlier one.
_CREATED_WITHOUT_PARTITION_KEY = (("\nAND e.task_created_at = t.created_at)", "\n)"),)


def _before_0009(statement: str, *, created: bool = False) -> str:
    pieces = _WITHOUT_PARTITION_KEY + (_CREATED_WITHOUT_PARTITION_KEY if created else ())
    for now, then in pieces:
        assert now in statement, now
        statement = statement.replace(now, then)
    return statement


@pytest.fixture
async def empty_url(database_url: str) -> AsyncIterator[str]:
    name = f"partitions_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(database_url, dbname=name)
    finally:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _migrate_through(url: str, last: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(_LEDGER)
        for version, sql in migration_files():
            if version > last:
                break
            async with conn.transaction():
                await conn.execute(sql.encode())
                await conn.execute("INSERT INTO schema_migrations VALUES (%s, now())", (version,))


def _event(task_id: str, kind: str, when: datetime, **data: Any) -> EventEnvelope:
    return EventEnvelope(id=str(uuid.uuid4()), type=kind, subject=task_id, time=when, data=data)


async def _fill(
    pool: AsyncConnectionPool, now: datetime
) -> dict[int, tuple[str, list[EventEnvelope]]]:
    """Tasks created on four days (one still open, one with a webhook), with processed
    marks, a duplicate recording and an outbox row left unpublished; by age in days."""
    store, tasks = EventStore(pool), {}
    for days, closed in ((40, True), (5, True), (1, False), (0, True)):
        task_id, when = str(uuid.uuid4()), now - timedelta(days=days)
        if days == 5:
            await WebhookStore(pool).subscribe(
                task_id,
                url="https://hooks.example/t",
                secret="whsec_test",
                secret_generated=True,
                event_types=None,
                request_hash="h",
            )
        events = [
            _event(task_id, "task.created.v1", when, task_type="demo.pipeline", input={}),
            _event(task_id, "task.step.started.v1", when, index=1, name="s", total_steps=1),
        ]
        if closed:
            events.append(_event(task_id, "task.completed.v1", when, result={"ok": True}))
        for envelope in events:
            assert not (await store.append(envelope)).duplicate
            async with ProcessedEvents(pool).first_time("audit", envelope.id) as conn:
                assert conn is not None
        assert (await store.append(events[1])).duplicate
        tasks[days] = (task_id, events)
    async with pool.connection() as conn:
        await conn.execute("UPDATE outbox SET published_at = now() WHERE seq > 1")
    return tasks


async def _all(pool: AsyncConnectionPool, query: str, *args: Any) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        cursor = await conn.execute(query, args or None)
        return await cursor.fetchall()


async def test_0009_converts_a_filled_0008_database_without_losing_an_event(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    await _migrate_through(empty_url, "0008_retention")
    pool = await open_pool(empty_url, min_size=1, max_size=4)
    try:
        with monkeypatch.context() as patch:  # the store as 0008 ran it
            old_statement = _before_0009(store.events.APPEND_STATEMENT)
            patch.setattr(store.events, "APPEND_STATEMENT", old_statement)
            old_created = _before_0009(store.events.APPEND_CREATED_STATEMENT, created=True)
            patch.setattr(store.events, "APPEND_CREATED_STATEMENT", old_created)
            tasks = await _fill(pool, now)
        before = await _all(pool, _EVENTS)
        outbox_before = await _all(pool, "SELECT * FROM outbox ORDER BY id")
        assert len(before) == 11

        applied = await migrate(empty_url)  # 0009, then the migrations after it
        assert applied[0] == "0009_partitioned_events"

        assert await _all(pool, _EVENTS) == before  # every event, byte for byte
        assert await _all(pool, "SELECT * FROM outbox ORDER BY id") == outbox_before
        # Every outbox row finds its event; every event is in its task's partition.
        assert await _all(
            pool, "SELECT count(*) FROM outbox o JOIN events e USING (event_id, task_id, seq)"
        ) == [(len(outbox_before),)]
        placed = await _all(
            pool,
            "SELECT e.tableoid::regclass::text, t.created_at, p.lower_bound, p.upper_bound"
            " FROM events e JOIN tasks t USING (task_id)"
            " LEFT JOIN taskplane_event_partitions p ON p.name = e.tableoid::regclass::text",
        )
        assert all(lower <= made < upper for _, made, lower, upper in placed), placed
        assert len({name for name, *_ in placed}) == 4  # one partition a day with tasks
        # Sequences: dense from 1, and `last_seq` the highest.
        gaps = await _all(
            pool,
            "SELECT t.task_id FROM tasks t JOIN events e USING (task_id)"
            " GROUP BY t.task_id, t.last_seq"
            " HAVING t.last_seq <> max(e.seq) OR count(*) <> max(e.seq) OR min(e.seq) <> 1",
        )
        assert gaps == []

        # Partitions ahead of time: now and the next days are covered.
        covered = await _all(
            pool,
            "SELECT count(*) FROM taskplane_event_partitions"
            " WHERE lower_bound <= now() + interval '3 days' AND upper_bound > now()",
        )
        assert covered[0][0] >= 3

        # Appends go on: duplicates refused, sequences continue, a new task lands today.
        events = EventStore(pool)
        for _task_id, recorded in tasks.values():
            again = await events.append(recorded[0])
            assert again.duplicate
            assert again.sequence == 1
        open_id = tasks[1][0]
        step = _event(open_id, "task.step.completed.v1", now, index=1, name="s", total_steps=1)
        assert (await events.append(step)).sequence == 3
        assert [e.sequence for e in await events.history(open_id)] == [1, 2, 3]
        fresh = str(uuid.uuid4())
        await events.append(_event(fresh, "task.created.v1", now, task_type="t", input={}))
        where = await _all(
            pool, "SELECT tableoid::regclass::text FROM events WHERE task_id = %s", fresh
        )
        assert where[0][0] != "events_default"
        hooked = await WebhookStore(pool).deliveries(tasks[5][0])
        assert [d.sequence for d in hooked] == [1, 2, 3]

        # The relay reads pending rows with their events (join on the event id).
        async with Outbox(pool).claim(grace=timedelta(0), limit=100) as batch:
            pending = {e.event_id for e in batch.events}
        assert {recorded[0].id for _, recorded in tasks.values()} <= pending

        # The constraints: an event id twice in a task's partition, a sequence twice.
        async with pool.connection() as conn:
            for duplicate in (
                "INSERT INTO events SELECT task_id, seq + 100, event_id, event_type,"
                " recorded_at, envelope, task_created_at FROM events WHERE task_id = %s LIMIT 1",
                "INSERT INTO events SELECT task_id, seq, event_id || 'x', event_type,"
                " recorded_at, envelope, task_created_at FROM events WHERE task_id = %s LIMIT 1",
            ):
                with pytest.raises(psycopg.errors.UniqueViolation):
                    async with conn.transaction():
                        await conn.execute(duplicate, (open_id,))
    finally:
        await pool.close()
