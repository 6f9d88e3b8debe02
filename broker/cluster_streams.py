"""The durable stream on a Redis Cluster: a fixed number of partition streams.

A stream is one key, so one slot, so one primary: a single stream would put every
durable write of the cluster on one node. Instead `publish` appends to one of
`partitions` streams, `<stream_key>:{<tag>}`. Each tag is precomputed so that
partition i's slot is the middle of the i-th of `partitions` equal slot ranges:
partitions spread over the slots as evenly as the count allows, hence over the
primaries (plain tags such as `{0}`, `{1}`, … land wherever CRC16 puts them, often
several on one node). A topic always goes to the partition whose range holds the
topic's own slot (`partition_of`), so a task's events stay in one stream, in order,
and usually on the primary that also serves its live channel.

Consumer groups exist per partition (same group name on each). One consumer of a
group reads every partition through `PartitionedGroupBackend`, a `GroupBackend` over
one `RedisGroupBackend` per partition: it takes at most `count` entries per read,
starting each read at the partition after the one the last read ended on, so no
partition starves; with nothing to read it waits on all partitions at once (one
blocking XREAD each — multi-key commands must stay in one slot) and returns when
the first has something. Message ids are `<partition>:<stream id>`, so acks, claims
and dead letters go back to their partition; each partition has its dead-letter
stream under the same tag (the XADD and XACK of a dead letter are one transaction,
which must stay in one slot). Per-task order holds; order across tasks does not.
"""

from __future__ import annotations

import asyncio
from binascii import crc_hqx
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from broker.cancelling import cancel_until_done
from broker.cluster_topology import SLOTS, slot_of
from broker.group_backend import StreamEntry
from broker.protocol import BrokerUnavailableError, DeadLetterReason, TrimGap
from broker.redis_streams import RedisGroupBackend


@cache
def partition_tags(count: int) -> tuple[str, ...]:
    """Partition i's hash tag: the first decimal number whose slot is the middle of the
    i-th of `count` equal slot ranges (deterministic: every process finds the same)."""
    if not 1 <= count <= SLOTS:
        raise ValueError(f"partitions must be between 1 and {SLOTS}, got {count}")
    wanted = {(2 * index + 1) * SLOTS // (2 * count): index for index in range(count)}
    tags: dict[int, str] = {}
    number = 0
    while len(tags) < count:
        slot = crc_hqx(b"%d" % number, 0) % SLOTS  # CRC16, as Redis hashes a key
        if slot in wanted and wanted[slot] not in tags:
            tags[wanted[slot]] = str(number)
        number += 1
    return tuple(tags[index] for index in range(count))


@dataclass(frozen=True, slots=True)
class Partitions:
    """The partition streams of one durable stream key."""

    stream_key: str
    count: int

    def key(self, index: int) -> str:
        return f"{self.stream_key}:{{{partition_tags(self.count)[index]}}}"

    def dead_key(self, index: int) -> str:
        return f"{self.key(index)}:dead"

    def of(self, topic: str) -> int:
        """The partition of `topic`: the one whose slot range holds the topic's slot."""
        return slot_of(topic) * self.count // SLOTS

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.count))


def message_prefix(index: int) -> str:
    return f"{index}:"


def partition_of_message(message_id: str) -> int:
    index, sep, _ = message_id.partition(":")
    if not sep or not index.isdigit():
        raise BrokerUnavailableError(f"{message_id!r} is not a partitioned message id")
    return int(index)


class PartitionedGroupBackend:
    """One consumer of one group over every partition; a `broker.group_backend.GroupBackend`."""

    def __init__(self, parts: Sequence[RedisGroupBackend]) -> None:
        self._parts = list(parts)
        self._next = 0  # the partition the next read starts at
        self._gaps: dict[TrimGap, int] = {}
        self._waiters: dict[int, asyncio.Task[None]] = {}

    async def ensure_group(self, *, from_start: bool) -> None:
        for part in self._parts:
            await part.ensure_group(from_start=from_start)

    async def read_own_pending(self, count: int) -> list[StreamEntry]:
        entries: list[StreamEntry] = []
        for part in self._parts:
            entries.extend(await part.read_own_pending(count))
        return entries

    async def claim_idle(self, min_idle_seconds: float, count: int) -> list[StreamEntry]:
        entries: list[StreamEntry] = []
        for index in self._rotation():
            entries.extend(
                await self._parts[index].claim_idle(min_idle_seconds, count - len(entries))
            )
            if len(entries) >= count:
                break
        return entries

    async def read_new(self, count: int, block_seconds: float) -> list[StreamEntry] | TrimGap:
        read = await self._read_round(count)
        if not isinstance(read, dict):
            return read
        await self._wait_any(read, block_seconds)
        again = await self._read_round(count)
        return [] if isinstance(again, dict) else again

    async def _read_round(self, count: int) -> list[StreamEntry] | TrimGap | dict[int, str]:
        """Up to `count` new entries, taken partition by partition; a partition's trim gap
        (when nothing was taken before it); or, nothing new anywhere, every position."""
        entries: list[StreamEntry] = []
        positions: dict[int, str] = {}
        for index in self._rotation():
            read = await self._parts[index].read_available(count - len(entries))
            if isinstance(read, TrimGap):
                if entries:
                    return entries  # found again by the next read
                self._gaps[read] = index
                return read
            if isinstance(read, str):
                positions[index] = read
                continue
            entries.extend(read)
            if len(entries) >= count:
                self._next = (index + 1) % len(self._parts)
                return entries
        return entries or positions

    def _rotation(self) -> list[int]:
        size = len(self._parts)
        return [(self._next + step) % size for step in range(size)]

    async def _wait_any(self, positions: dict[int, str], block_seconds: float) -> None:
        """Until some partition has an entry after its position, or `block_seconds`.

        A wait that did not end stays and serves the next call (it ends within its
        block), so no partition ever has two blocked reads."""
        for index, position in positions.items():
            if index not in self._waiters:
                self._waiters[index] = asyncio.create_task(
                    self._parts[index].wait_new(position, block_seconds)
                )
        if not self._waiters:
            return
        done, _ = await asyncio.wait(
            self._waiters.values(), timeout=block_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        failure: BaseException | None = None
        for index, task in list(self._waiters.items()):
            if task in done:
                del self._waiters[index]
                if not task.cancelled() and task.exception() is not None:
                    failure = task.exception()
        if failure is not None:
            raise failure

    async def close(self) -> None:
        """Cancel the waits in flight (the consumer is leaving)."""
        waiters = list(self._waiters.values())
        self._waiters.clear()
        await cancel_until_done(waiters)  # what a wait raised as the consumer left is dropped

    async def close_gap(self, gap: TrimGap) -> None:
        index = self._gaps.pop(gap, None)
        if index is not None:
            await self._parts[index].close_gap(gap)

    async def ack(self, message_id: str) -> None:
        await self._parts[partition_of_message(message_id)].ack(message_id)

    async def dead_letter(self, entry: StreamEntry, reason: DeadLetterReason, error: str) -> None:
        await self._parts[partition_of_message(entry.message_id)].dead_letter(entry, reason, error)

    async def forget_idle_consumers(self, idle_seconds: float) -> int:
        forgotten = 0
        for part in self._parts:
            forgotten += await part.forget_idle_consumers(idle_seconds)
        return forgotten
