"""Postgres unreachable for a few seconds → activities retry; nothing is lost or repeated.

The worker reaches Postgres only through a proxy this test controls (the embedded
server listens on a unix socket; the proxy gives the worker a TCP address in front
of it). The outage resets every connection the worker holds — its pool, the
relay's LISTEN connection, the handler's transactions — and refuses new ones for a
few seconds, while tasks are recording events. The API and the observers read the
store directly, as the truth.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio import client as client_interceptors
from temporalio import worker as worker_interceptors
from temporalio.client import Client
from temporalio.worker import Worker

from activities.recorder import EventRecorder
from tests.faults.harness import (
    BrokerStreamView,
    SSEWatcher,
    collector,
    create_task,
    fault_settings,
    pending_rows,
    watch,
    worker_and_api,
)
from tests.faults.proxy import fault_proxy
from tests.invariants import load_history, wait_until_delivered
from tests.polling import until
from worker.temporal_worker import build_worker

log = logging.getLogger(__name__)


class AttemptLog(client_interceptors.Interceptor, worker_interceptors.Interceptor):
    """Every activity attempt that failed (local activities included), seen from inside."""

    def __init__(self) -> None:
        self.failed: list[tuple[str, int, str]] = []

    def intercept_activity(
        self, next: worker_interceptors.ActivityInboundInterceptor
    ) -> worker_interceptors.ActivityInboundInterceptor:
        return _LoggedAttempts(next, self.failed)


class _LoggedAttempts(worker_interceptors.ActivityInboundInterceptor):
    def __init__(
        self,
        next: worker_interceptors.ActivityInboundInterceptor,
        failed: list[tuple[str, int, str]],
    ) -> None:
        super().__init__(next)
        self.failed = failed

    async def execute_activity(self, input: worker_interceptors.ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except Exception as exc:
            info = activity.info()
            self.failed.append((info.activity_type, info.attempt, type(exc).__name__))
            raise


OUTAGE_SECONDS = 2.0
TASK = {"steps": 3, "step_seconds": 0.6, "progress_ticks": 3}


def unix_socket_of(database_url: str) -> str:
    params = conninfo_to_dict(database_url)
    return f"{params['host']}/.s.PGSQL.{params.get('port', 5432)}"


async def test_activities_retry_through_a_postgres_outage(
    truth: AsyncConnectionPool, fault_db: str, redis_url: str, temporal_address: str
) -> None:
    watchers: list[SSEWatcher] = []
    stream = BrokerStreamView(redis_url)
    async with fault_proxy(unix=unix_socket_of(fault_db)) as proxy:
        proxied = make_conninfo(fault_db, host="127.0.0.1", port=proxy.port)
        settings = fault_settings(
            database_url=proxied,
            redis_url=redis_url,
            temporal_address=temporal_address,
            # Shorter than the outage: an attempt that needs a connection during it fails
            # (PoolTimeout) and Temporal retries it. With the default (5 s) a 2 s outage is
            # mostly waited out by the pool, and whether any attempt fails is up to timing.
            db_pool_timeout_seconds=OUTAGE_SECONDS / 4,
        )
        group = f"faults-pg-{settings.task_queue}"
        attempts = AttemptLog()

        def make_worker(client: Client, recorder: EventRecorder, task_queue: str) -> Worker:
            config = client.config()
            config["interceptors"] = [*config["interceptors"], attempts]
            return build_worker(Client(**config), recorder, task_queue=task_queue)

        try:
            async with worker_and_api(
                settings, stream, group=group, api_database_url=fault_db, make_worker=make_worker
            ) as (worker, http):
                task_ids = [await create_task(http, TASK) for _ in range(2)]
                watchers.extend(w for task_id in task_ids for w in watch(http, task_id))

                async def both_running() -> bool:
                    return len(await load_history(truth, task_ids)) >= 4

                await until(both_running, within=20)
                await proxy.outage()
                await asyncio.sleep(OUTAGE_SECONDS)
                connections = proxy.connections
                at_restore = len(await load_history(truth, task_ids))
                await proxy.restore()

                collect = collector(truth, task_ids, watchers, group, stream)
                history, _ = await wait_until_delivered(collect, tasks=task_ids, within=60)
                # The outage hit running tasks, which went on afterwards and completed.
                assert len(history) > at_restore
                assert {e.task_id: e.type for e in history} == dict.fromkeys(
                    task_ids, "task.completed.v1"
                )
                assert proxy.connections > connections  # the worker had to reconnect
                assert await pending_rows(truth, task_ids) == 0

                async def listening_again() -> bool:
                    return worker.relay.listening

                await until(listening_again, within=20)
                for watcher in watchers:
                    assert (watcher.status, watcher.error) == (200, None)
                # Activities failed on the dead connections and Temporal retried them (the
                # tasks completed); the rest of the recordings waited for the pool.
                assert attempts.failed, "the outage failed no activity attempt"
                log.info("attempts failed by the outage: %s", attempts.failed)
        finally:
            for watcher in watchers:
                await watcher.stop()
            await stream.close()
