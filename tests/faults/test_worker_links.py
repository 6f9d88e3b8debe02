"""The worker's links to Postgres, Redis and Temporal stall or reset while tasks run.

The in-process worker (tests/faults/harness.py) reaches one server through a fault
proxy; the API, the SSE clients and the checks reach every server directly. While
tasks are running the proxy either *stalls* (holds every byte, connections open,
for a moment: a server that stops answering) or *resets* every open connection (it
goes on accepting new ones: a restart, a dropped NAT entry). Callers keep asking
the API about the tasks meanwhile. Afterwards every task has completed, the store's
history, two SSE clients per task and the durable handler pass `tests.invariants`
(each event seen once, in order), the outbox is empty, and no caller saw a 5xx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from tests.faults.common import Callers, delivered_and_no_500
from tests.faults.harness import (
    BrokerStreamView,
    SSEWatcher,
    create_task,
    fault_settings,
    watch,
    worker_and_api,
)
from tests.faults.proxy import FaultProxy, fault_proxy
from tests.faults.test_postgres_down import unix_socket_of
from tests.invariants import load_history
from tests.polling import until

pytestmark = pytest.mark.timeout(120)

TASK = {"steps": 2, "step_seconds": 0.5, "progress_ticks": 2}
FAULT_SECONDS = 1.5


@dataclass
class Servers:
    database_url: str
    redis_url: str
    temporal_address: str


@asynccontextmanager
async def proxied(link: str, servers: Servers) -> AsyncIterator[tuple[FaultProxy, Servers]]:
    """A proxy in front of `link`'s server, and the servers as the worker reaches them."""
    if link == "postgres":
        async with fault_proxy(unix=unix_socket_of(servers.database_url)) as proxy:
            url = make_conninfo(servers.database_url, host="127.0.0.1", port=proxy.port)
            yield proxy, Servers(url, servers.redis_url, servers.temporal_address)
    elif link == "redis":
        target = urlsplit(servers.redis_url)
        async with fault_proxy(host=target.hostname, port=target.port) as proxy:
            url = target._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
            yield proxy, Servers(servers.database_url, url, servers.temporal_address)
    else:
        host, port = servers.temporal_address.rsplit(":", 1)
        async with fault_proxy(host=host, port=int(port)) as proxy:
            address = f"127.0.0.1:{proxy.port}"
            yield proxy, Servers(servers.database_url, servers.redis_url, address)


@pytest.mark.parametrize("fault", ["stall", "reset"])
@pytest.mark.parametrize("link", ["postgres", "redis", "temporal"])
async def test_tasks_finish_and_every_event_is_delivered_once_through_a_worker_link_fault(
    link: str,
    fault: str,
    truth: AsyncConnectionPool,
    fault_db: str,
    redis_url: str,
    temporal_address: str,
) -> None:
    direct = Servers(fault_db, redis_url, temporal_address)
    stream = BrokerStreamView(redis_url)
    watchers: list[SSEWatcher] = []
    async with proxied(link, direct) as (proxy, worker_sees):
        settings = fault_settings(
            database_url=worker_sees.database_url,
            redis_url=worker_sees.redis_url,
            temporal_address=worker_sees.temporal_address,
            relay_backlog_seconds=0.2,
            db_pool_timeout_seconds=FAULT_SECONDS / 2,
        )
        group = f"faults-{link}-{fault}-{settings.task_queue}"
        try:
            async with worker_and_api(
                settings,
                stream,
                group=group,
                api_database_url=direct.database_url,
                api_redis_url=direct.redis_url,
                api_temporal_address=direct.temporal_address,
            ) as (_worker, http):
                callers = Callers(http)
                task_ids = [await create_task(http, TASK) for _ in range(2)]
                watchers.extend(w for task_id in task_ids for w in watch(http, task_id))

                async def both_running() -> bool:
                    return len(await load_history(truth, task_ids)) >= 4

                await until(both_running, within=20)
                connections = proxy.connections
                if fault == "stall":
                    proxy.stall()
                    await callers.keep_asking(task_ids, FAULT_SECONDS)
                    proxy.flow()
                    assert proxy.held > 0  # the worker used the link while it was stalled
                else:
                    await proxy.reset()
                    await callers.keep_asking(task_ids, FAULT_SECONDS)

                await delivered_and_no_500(truth, task_ids, watchers, group, stream, callers)
                if fault == "reset":
                    assert proxy.connections > connections  # the worker had to reconnect
        finally:
            for watcher in watchers:
                await watcher.stop()
            await stream.close()
