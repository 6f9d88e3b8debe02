"""What the worker-link fault tests share: callers of the API during a fault, and the end check.

`Callers` records the status of every response the test's API client got (SSE
streams included: the hook sees their headers) and keeps asking the API about
the tasks while a fault lasts, as users would. `delivered_and_no_500` is how each
such test ends: the store's history, every SSE client and the durable handler pass
`tests.invariants`, every task completed, the outbox is empty, no stream broke,
and no caller saw a 5xx other than a 503 (which is the API saying "try again").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
from psycopg_pool import AsyncConnectionPool

from tests.faults.harness import BrokerStreamView, SSEWatcher, collector, pending_rows
from tests.invariants import wait_until_delivered


@dataclass
class Callers:
    http: httpx.AsyncClient
    statuses: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.http.event_hooks = {"request": [], "response": [self._record]}

    async def _record(self, response: httpx.Response) -> None:
        request = response.request
        self.statuses.append((f"{request.method} {request.url.path}", response.status_code))

    async def keep_asking(self, task_ids: list[str], seconds: float) -> None:
        """Read the tasks and the API's readiness every 0.1 s for `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for task_id in task_ids:
                await self.http.get(f"/tasks/{task_id}")
            await self.http.get("/tasks", params={"limit": 5})
            await self.http.get("/readyz")
            await asyncio.sleep(0.1)

    def server_errors(self, *, allowed: frozenset[int] = frozenset()) -> list[tuple[str, int]]:
        return [
            (what, status)
            for what, status in self.statuses
            if status >= 500 and status not in allowed
        ]


async def delivered_and_no_500(
    truth: AsyncConnectionPool,
    task_ids: list[str],
    watchers: list[SSEWatcher],
    group: str,
    stream: BrokerStreamView,
    callers: Callers,
    *,
    allowed: frozenset[int] = frozenset(),
    within: float = 60,
) -> None:
    collect = collector(truth, task_ids, watchers, group, stream)
    history, _ = await wait_until_delivered(collect, tasks=task_ids, within=within)
    assert {e.task_id: e.type for e in history} == dict.fromkeys(task_ids, "task.completed.v1")
    assert await pending_rows(truth, task_ids) == 0
    for watcher in watchers:
        assert (watcher.status, watcher.error) == (200, None), watcher.name
    assert callers.statuses, "no caller asked the API anything"
    assert not callers.server_errors(allowed=allowed), callers.server_errors(allowed=allowed)
