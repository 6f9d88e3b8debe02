"""`ClusterStreamView`: the broker's partitioned durable stream on a Redis Cluster, as an
observer for the invariant checker (tests/faults/test_redis_cluster_faults.py) and a way to
wait for a consumer group on every partition (tests/e2e/test_cluster_stack.py)."""

from __future__ import annotations

import contextlib
from typing import Any

from redis.asyncio.cluster import RedisCluster

from broker.cluster_streams import Partitions
from tests.faults.harness import BrokerStreamView
from tests.invariants import Event
from tests.polling import until


class ClusterStreamView(BrokerStreamView):
    """`BrokerStreamView` over every partition stream of the cluster broker."""

    def __init__(self, url: str, partitions: Partitions) -> None:
        self._cluster = RedisCluster.from_url(url, decode_responses=True)
        self._partitions = partitions
        self._marks: dict[int, str] = {}

    async def mark(self) -> None:
        for index in self._partitions:
            newest: Any = await self._cluster.xrevrange(self._partitions.key(index), count=1)
            self._marks[index] = newest[0][0] if newest else "0-0"

    async def events(self, task_ids: Any) -> list[Event]:
        wanted = set(task_ids)
        found: list[Event] = []
        for index in self._partitions:
            try:
                entries: Any = await self._cluster.xrange(
                    self._partitions.key(index), min=f"({self._marks.get(index, '0-0')}"
                )
            except Exception:
                return []
            for _, fields in entries:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    found.append(Event.from_envelope(fields["payload"]))
        return [e for e in found if e.task_id in wanted]

    async def group_ready(self, group: str, within: float = 20) -> None:
        async def exists() -> bool:
            with contextlib.suppress(Exception):
                for index in self._partitions:
                    groups: Any = await self._cluster.xinfo_groups(self._partitions.key(index))
                    if not any(g["name"] == group for g in groups):
                        return False
                return True
            return False

        await until(exists, within=within, what=f"consumer group {group} on every partition")

    async def close(self) -> None:
        await self._cluster.aclose()
