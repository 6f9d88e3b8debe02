"""Which primary serves which hash slot: the live fan-out's own view of a Redis Cluster.

Live fan-out (broker/cluster_pubsub.py) keeps one pub/sub connection per primary and
must know, for each channel, which primary owns the channel's slot. It reads that
with `CLUSTER SLOTS` from any node it can reach — the node `TASKPLANE_REDIS_URL` names
first, then every node the last answer listed (replicas included, so losing the first
node does not lose the map) — on a fresh, short-lived connection each time. Nothing
here rides on redis-py's cluster client: that client refreshes its map only when one
of its own commands fails, and a subscribe-only process sends none (measured: it kept
dialling a dead primary for 30 s+), so the pub/sub watchdog refreshes this map itself.

Also here: how the broker's cluster clients are made (`cluster_client`), the one place
the `RedisCluster` class is named.
"""

from __future__ import annotations

import inspect
import logging
import random
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Address = tuple[str, int]
SLOTS = REDIS_CLUSTER_HASH_SLOTS


def slot_of(name: str) -> int:
    """The hash slot of a key or shard channel (its `{tag}` when it has one)."""
    return int(key_slot(name.encode()))


# redis-py 8.2 re-reads the slot map after a connection error at most once a second by
# default (`topology_refresh_min_interval`); a release without that argument is left as is.
_REFRESH_LIMITED = "topology_refresh_min_interval" in inspect.signature(RedisCluster).parameters


def cluster_client(
    url: str,
    *,
    timeout: float,
    client_name: str,
    refresh_interval: float | None = None,
    **options: Any,
) -> RedisCluster:
    """A redis-py cluster client for commands (publish, streams): it follows MOVED itself.

    `refresh_interval`: the least time between two re-reads of its slot map after errors
    (a failover is seen that much after it happened at worst); redis-py's own default
    when None.
    """
    if refresh_interval is not None and _REFRESH_LIMITED:
        options["topology_refresh_min_interval"] = refresh_interval
    return RedisCluster.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        client_name=client_name,
        **options,
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClusterTopology:
    """The slot map as last read: slot → primary address, and every node seen."""

    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urlsplit(url)
        self._seed: Address = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._username = parts.username
        self._password = parts.password
        self._timeout = timeout
        self._owners: list[Address | None] = [None] * SLOTS
        self._known: list[Address] = [self._seed]
        self._last_good: Address | None = None
        self.refreshes = 0

    @property
    def ready(self) -> bool:
        """Whether a map was read at least once."""
        return self._last_good is not None

    def primary_for(self, channel: str) -> Address | None:
        """The primary serving `channel`'s slot, or None before the first map."""
        return self._owners[slot_of(channel)]

    def primaries(self) -> set[Address]:
        return {owner for owner in self._owners if owner is not None}

    async def refresh(self) -> bool:
        """Read the map from the first node that answers; True when it changed.

        Raises `RedisError` when no known node answered.
        """
        candidates = list(dict.fromkeys([*filter(None, [self._last_good]), *self._shuffled()]))
        error: Exception | None = None
        for address in candidates:
            try:
                reply = await self._cluster_slots(address)
            except (RedisError, OSError) as exc:
                error = exc
                continue
            self._last_good = address
            self.refreshes += 1
            return self._apply(reply)
        raise RedisError(f"no cluster node answered CLUSTER SLOTS (last error: {error})")

    def _shuffled(self) -> list[Address]:
        known = [self._seed, *self._known]
        random.shuffle(known)
        return known

    async def _cluster_slots(self, address: Address) -> list[Any]:
        client = Redis(
            host=address[0],
            port=address[1],
            username=self._username,
            password=self._password,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            reply: list[Any] = await client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
            return reply
        finally:
            with suppress(RedisError, OSError):
                await client.aclose()

    def _apply(self, reply: list[Any]) -> bool:
        owners: list[Address | None] = [None] * SLOTS
        known: dict[Address, None] = {}
        for entry in reply:
            start, end, primary, *replicas = entry
            address = (_text(primary[0]) or self._seed[0], int(primary[1]))
            owners[int(start) : int(end) + 1] = [address] * (int(end) - int(start) + 1)
            known[address] = None
            for replica in replicas:
                known[(_text(replica[0]) or self._seed[0], int(replica[1]))] = None
        changed = owners != self._owners
        self._owners = owners
        self._known = list(known) or self._known
        if changed:
            log.info(
                "Redis Cluster slot map changed",
                extra={"primaries": sorted(f"{h}:{p}" for h, p in self.primaries())},
            )
        return changed
