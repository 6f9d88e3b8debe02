"""Consumer groups on the Redis stream `RedisBroker.publish` appends to.

`RedisGroupBackend` is the Redis half of `broker.durable.GroupConsumer`:

    ensure_group      XGROUP CREATE key g $ MKSTREAM
    read_new          XINFO GROUPS, XRANGE COUNT 1, XREADGROUP … COUNT n > (one script);
                      when it read nothing, XREAD BLOCK ms STREAMS key <group's last id>
    close_gap         XGROUP SETID key g <id before the first entry> (a script)
    read_own_pending  XPENDING key g - + n c            then XCLAIM … 0 <ids>
    claim_idle        XPENDING key g IDLE ms - + n      then XCLAIM … ms <ids>
    ack               XACK key g id
    dead_letter       MULTI; XADD key:dead …; XACK key g id; EXEC
    forget_idle_…     XINFO CONSUMERS key g          then XGROUP DELCONSUMER (idle, none pending)

Why XPENDING + XCLAIM rather than XAUTOCLAIM: the delivery count decides when
a message is dead-lettered, and only XPENDING reports it; and Redis 6.2 (the
embedded server) answers XAUTOCLAIM of a trimmed entry with a bare nil, no id,
so it could never be acknowledged. XCLAIM names its ids, so an id asked for
and not returned is either trimmed (then acknowledged as gone) or was just
claimed by another consumer (XCLAIM's min-idle check lost the race; skipped).

Trim gaps: XREADGROUP `>` silently reads past entries the stream's cap trimmed
before the group got to them, so new entries are read by a script that finds such
a gap first (broker/redis_trim.py says how).

The script cannot block, so when it read nothing the consumer waits on its own
connection (`reader`) with XREAD BLOCK from the group's position — a doorbell that
never holds a connection of the publish pool for `block` milliseconds — and then
reads again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from broker.group_backend import StreamEntry
from broker.protocol import BrokerUnavailableError, DeadLetterReason, TrimGap, id_before
from broker.redis_trim import CLOSE_GAP, READ_NEW

log = logging.getLogger(__name__)

T = TypeVar("T")

# A single Redis, or (broker/cluster_streams.py: one backend per partition) a cluster.
Client = Redis | RedisCluster


def _pairs(flat: list[Any]) -> dict[Any, Any]:
    """A script's flat [field, value, …] reply as a dict."""
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


class RedisGroupBackend:
    def __init__(
        self,
        commands: Client,
        reader: Client,
        *,
        stream_key: str,
        dead_key: str,
        dead_maxlen: int,
        group: str,
        consumer: str,
        id_prefix: str = "",
    ) -> None:
        self._commands = commands
        self._reader = reader
        self._key = stream_key
        self._dead_key = dead_key
        self._dead_maxlen = dead_maxlen
        self._group = group
        self._consumer = consumer
        # Message ids handed out are `<id_prefix><stream id>`: a partitioned broker tells
        # its partitions' ids apart by it (broker/cluster_streams.py); "" for one stream.
        self._id_prefix = id_prefix
        self._read_script = commands.register_script(READ_NEW)
        self._close_script = commands.register_script(CLOSE_GAP)

    async def ensure_group(self, *, from_start: bool) -> None:
        try:
            await self._commands.xgroup_create(
                self._key, self._group, id="0" if from_start else "$", mkstream=True
            )
            log.info("consumer group created", extra={"group": self._group, "stream": self._key})
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise BrokerUnavailableError(f"XGROUP CREATE {self._group}: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise BrokerUnavailableError(f"XGROUP CREATE {self._group}: {exc}") from exc

    async def read_new(self, count: int, block_seconds: float) -> list[StreamEntry] | TrimGap:
        read = await self.read_available(count)
        if not isinstance(read, str):
            return read
        # Nothing new: wait for an entry after the group's position, then read again.
        await self.wait_new(read, block_seconds)
        again = await self.read_available(count)
        return [] if isinstance(again, str) else again

    async def wait_new(self, position: str, block_seconds: float) -> None:
        """Return once an entry after `position` exists, or after `block_seconds`."""
        await self._call(
            self._reader.xread(
                {self._key: position}, count=1, block=max(int(block_seconds * 1000), 1)
            )
        )

    async def read_available(self, count: int) -> list[StreamEntry] | TrimGap | str:
        """New entries, the gap before them, or (nothing new) the group's position."""
        reply: Any = await self._call(
            self._read_script(keys=[self._key], args=[self._group, self._consumer, count])
        )
        kind = _text(reply[0])
        if kind == "nogroup":
            log.warning("consumer group is gone; recreating it", extra={"group": self._group})
            await self.ensure_group(from_start=True)
            raise BrokerUnavailableError(f"NOGROUP: the stream or group {self._group} is gone")
        if kind == "gap":
            return TrimGap(_text(reply[1]), _text(reply[2]))
        entries = [
            self._entry(message_id, _pairs(fields), deliveries=1) for message_id, fields in reply[2]
        ]
        return entries or _text(reply[1])

    async def close_gap(self, gap: TrimGap) -> None:
        moved = await self._call(
            self._close_script(
                keys=[self._key], args=[self._group, gap.after_id, id_before(gap.before_id)]
            )
        )
        log.info(
            "consumer group moved past a healed trim gap" if moved else "trim gap already closed",
            extra={"group": self._group, "after_id": gap.after_id, "before_id": gap.before_id},
        )

    async def read_own_pending(self, count: int) -> list[StreamEntry]:
        return await self._claim(min_idle_ms=0, count=count, owner=self._consumer)

    async def claim_idle(self, min_idle_seconds: float, count: int) -> list[StreamEntry]:
        return await self._claim(min_idle_ms=int(min_idle_seconds * 1000), count=count, owner=None)

    async def ack(self, message_id: str) -> None:
        await self._call(self._commands.xack(self._key, self._group, self._stream_id(message_id)))

    def _stream_id(self, message_id: str) -> str:
        return message_id.removeprefix(self._id_prefix)

    async def dead_letter(self, entry: StreamEntry, reason: DeadLetterReason, error: str) -> None:
        fields: dict[Any, Any] = {
            "message_id": entry.message_id,
            "group": self._group,
            "consumer": self._consumer,
            "reason": reason.value,
            "error": error,
            "topic": entry.topic or "",
            "payload": entry.payload if entry.payload is not None else "",
            "deliveries": entry.deliveries,
        }

        async def store_and_ack() -> None:
            async with self._commands.pipeline(transaction=True) as pipe:
                pipe.xadd(self._dead_key, fields, maxlen=self._dead_maxlen, approximate=True)
                pipe.xack(self._key, self._group, self._stream_id(entry.message_id))
                await pipe.execute()

        await self._call(store_and_ack())

    async def forget_idle_consumers(self, idle_seconds: float) -> int:
        consumers: Any = await self._call(self._commands.xinfo_consumers(self._key, self._group))
        idle_ms = idle_seconds * 1000
        forgotten = [
            _text(c["name"])
            for c in consumers
            if c["pending"] == 0 and c["idle"] >= idle_ms and _text(c["name"]) != self._consumer
        ]
        for name in forgotten:
            await self._call(self._commands.xgroup_delconsumer(self._key, self._group, name))
        return len(forgotten)

    async def _claim(self, *, min_idle_ms: int, count: int, owner: str | None) -> list[StreamEntry]:
        pending: Any = await self._call(
            self._commands.xpending_range(
                self._key,
                self._group,
                min="-",
                max="+",
                count=count,
                consumername=owner,
                idle=min_idle_ms or None,
            )
        )
        if not pending:
            return []
        ids: list[Any] = [_text(p["message_id"]) for p in pending]
        delivered = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        claimed: Any = await self._call(
            self._commands.xclaim(self._key, self._group, self._consumer, min_idle_ms, ids)
        )
        entries = [
            self._entry(message_id, fields, deliveries=delivered[_text(message_id)] + 1)
            for message_id, fields in claimed
            if message_id is not None
        ]
        if len(entries) < len(ids):
            # Not returned: trimmed (6.2 answers nil for it, 7 drops it from the pending
            # list without a word), or just claimed by another consumer (still there).
            returned = {self._stream_id(e.message_id) for e in entries}
            entries.extend(await self._gone(set(ids) - returned, delivered))
        return entries

    async def _gone(self, candidates: set[str], delivered: dict[str, int]) -> list[StreamEntry]:
        """Of the ids XCLAIM did not return, those no longer in the stream."""
        gone = []
        for message_id in sorted(candidates):
            if not await self._call(self._commands.xrange(self._key, message_id, message_id)):
                gone.append(
                    StreamEntry(self._id_prefix + message_id, None, None, delivered[message_id] + 1)
                )
        return gone

    def _entry(
        self, message_id: bytes | str, fields: dict[Any, Any], *, deliveries: int
    ) -> StreamEntry:
        topic = fields.get(b"topic", fields.get("topic"))
        payload = fields.get(b"payload", fields.get("payload"))
        return StreamEntry(
            self._id_prefix + _text(message_id),
            _text(topic) if topic is not None else None,
            payload if payload is not None else b"",
            deliveries,
        )

    async def _call(self, command: Awaitable[T]) -> T:
        try:
            result = await command
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                # The group (or the whole stream) vanished: Redis lost its data, or
                # someone destroyed the group. Recreate it over what the stream holds.
                log.warning("consumer group is gone; recreating it", extra={"group": self._group})
                await self.ensure_group(from_start=True)
            raise BrokerUnavailableError(f"stream command failed: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise BrokerUnavailableError(f"stream command failed: {exc}") from exc
        _raise_swallowed_cancel()
        return result


def _raise_swallowed_cancel() -> None:
    """Deliver a cancellation the driver swallowed.

    redis-py (8.2, measured: 2 of 200 tries) can lose a cancel that lands as a
    blocking XREADGROUP's BLOCK runs out: the command returns normally and the task,
    still marked as cancelling, would read on forever — a consumer loop that a
    TaskGroup or a shutdown can never end (seen: a worker runtime whose loop died
    hung its exit).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
