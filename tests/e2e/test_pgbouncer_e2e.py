"""The worker and the API with their pools behind PgBouncer in transaction mode.

`TASKPLANE_DATABASE_URL` names PgBouncer (Debian's 1.18, `pool_mode = transaction`,
four server connections for all clients), `TASKPLANE_DATABASE_POOLER=transaction` turns
psycopg's server-side prepared statements off, and `TASKPLANE_DATABASE_DIRECT_URL`
names Postgres itself for the LISTENs. Tasks run through the API and the worker, every
event reaches its SSE client in order, and PgBouncer's own console shows it carried the
pools' traffic while the LISTEN connections bypassed it.

Why no end-to-end negative test (the same stack without the setting): which server
connection a transaction lands on depends on the timing of every client, so when the
first clash of prepared-statement names happens is not deterministic. The clash itself
is shown deterministically in tests/integration/test_pgbouncer.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.conftest import ProcessStack, running_stack
from tests.e2e.operator_cli import wait_status
from tests.pgbouncer import running_pgbouncer
from tests.sse import collect_events, payload

pytestmark = pytest.mark.e2e

TASKS = 4


@pytest.fixture(scope="module")
def bouncer_url(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("pgbouncer") / "pgbouncer.log"
    with running_pgbouncer(services.database_url, log, pool_size=4) as url:
        yield url


@pytest.fixture(scope="module")
def pooled_stack(
    services: Any, bouncer_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessStack]:
    log_dir = tmp_path_factory.mktemp("e2e-pgbouncer")
    with running_stack(
        services,
        log_dir,
        database_url=bouncer_url,
        database_pooler="transaction",
        database_direct_url=services.database_url,
    ) as processes:
        yield processes


def console(bouncer_url: str, command: str) -> list[dict[str, Any]]:
    """Rows of a PgBouncer console command (SHOW …), which speaks only simple queries."""
    admin = bouncer_url.rsplit("/", 1)[0] + "/pgbouncer"
    with (
        psycopg.connect(admin, autocommit=True) as conn,
        psycopg.ClientCursor(conn) as cursor,
    ):
        cursor.execute(command)
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def transactions(bouncer_url: str) -> dict[str, int]:
    """Transactions PgBouncer carried so far, per database."""
    return {row["database"]: row["total_xact_count"] for row in console(bouncer_url, "SHOW STATS")}


async def test_tasks_run_with_the_pools_behind_pgbouncer(
    pooled_stack: ProcessStack, bouncer_url: str, services: Any
) -> None:
    before = transactions(bouncer_url)
    async with httpx.AsyncClient(base_url=pooled_stack.base_url, timeout=30) as client:

        async def one(index: int) -> None:
            response = await client.post(
                "/tasks",
                json={
                    "type": "demo.pipeline",
                    "input": {"steps": 3, "step_seconds": 0.1, "progress_ticks": 3},
                },
            )
            assert response.status_code == 202, response.text
            task_id = response.json()["task_id"]
            status, frames = await collect_events(client, f"/tasks/{task_id}/events")
            assert status == 200
            assert [int(f.id or 0) for f in frames] == list(range(1, len(frames) + 1))
            assert {payload(f)["subject"] for f in frames} == {task_id}
            assert frames[-1].event == "task.completed.v1", (index, frames[-1].event)
            await wait_status(client, task_id, "completed")

        await asyncio.gather(*(one(index) for index in range(TASKS)))

    dbname = bouncer_url.rsplit("/", 1)[1]
    after = transactions(bouncer_url)
    assert after[dbname] > before.get(dbname, 0)  # the pools' transactions went through it

    # The LISTENs (the relay's, the webhook dispatcher's) hold connections to Postgres
    # directly: they are Postgres's sessions, and not PgBouncer's clients.
    clients = {row["application_name"] for row in console(bouncer_url, "SHOW CLIENTS")}
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        listening = {
            row[0]
            for row in conn.execute(
                "SELECT application_name FROM pg_stat_activity"
                " WHERE application_name IN ('taskplane-webhooks', 'taskplane-outbox-relay')"
            ).fetchall()
        }
    assert listening == {"taskplane-webhooks", "taskplane-outbox-relay"}
    assert not listening & clients, clients
