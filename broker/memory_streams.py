"""An in-process stand-in for a Redis stream with consumer groups (MemoryBroker's).

It keeps the semantics `GroupConsumer` relies on — a pending list per group
with an owner, a delivery count and an idle clock; claiming by idle time;
new entries after a group's last-delivered position — so the durable
contract runs unchanged against it. No trimming: entries are never gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.durable import StreamEntry
from broker.protocol import DeadLetter, DeadLetterReason, TrimGap


@dataclass(slots=True)
class _Pending:
    consumer: str
    deliveries: int
    since: float


@dataclass(slots=True)
class _Group:
    next_index: int  # the index in `MemoryStream.entries` of the next new entry
    pending: dict[int, _Pending] = field(default_factory=dict)


_Filter = Callable[[_Pending, float], bool]


class MemoryStream:
    """The stream every `publish` appends to, its groups and its dead letters."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []  # (topic, payload)
        self.groups: dict[str, _Group] = {}
        self.dead: list[DeadLetter] = []
        self._appended = asyncio.Event()

    def append(self, topic: str, payload: str) -> None:
        self.entries.append((topic, payload))
        # Wake every waiting reader; the next waiter gets a fresh event.
        self._appended.set()
        self._appended = asyncio.Event()

    async def wait_for_append(self, timeout: float) -> None:  # noqa: ASYNC109 -- mirrors BLOCK ms
        appended = self._appended
        try:
            async with asyncio.timeout(timeout):
                await appended.wait()
        except TimeoutError:
            return


def _message_id(index: int) -> str:
    return f"{index + 1}-0"


def _index(message_id: str) -> int:
    return int(message_id.split("-", 1)[0]) - 1


class MemoryGroupBackend:
    def __init__(self, stream: MemoryStream, *, group: str, consumer: str) -> None:
        self._stream = stream
        self._group_name = group
        self._consumer = consumer

    @property
    def _group(self) -> _Group:
        return self._stream.groups[self._group_name]

    async def ensure_group(self, *, from_start: bool) -> None:
        if self._group_name not in self._stream.groups:
            start = 0 if from_start else len(self._stream.entries)
            self._stream.groups[self._group_name] = _Group(next_index=start)

    async def read_new(self, count: int, block_seconds: float) -> list[StreamEntry]:
        if self._group.next_index >= len(self._stream.entries):
            await self._stream.wait_for_append(block_seconds)
        group = self._group
        now = asyncio.get_running_loop().time()
        indexes = range(group.next_index, min(group.next_index + count, len(self._stream.entries)))
        for index in indexes:
            group.pending[index] = _Pending(self._consumer, 1, now)
        group.next_index += len(indexes)
        return [self._entry(index, 1) for index in indexes]

    async def read_own_pending(self, count: int) -> list[StreamEntry]:
        return self._claim(lambda p, now: p.consumer == self._consumer, count)

    async def claim_idle(self, min_idle_seconds: float, count: int) -> list[StreamEntry]:
        return self._claim(lambda p, now: now - p.since >= min_idle_seconds, count)

    async def ack(self, message_id: str) -> None:
        self._group.pending.pop(_index(message_id), None)

    async def dead_letter(self, entry: StreamEntry, reason: DeadLetterReason, error: str) -> None:
        payload = entry.payload
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", "replace")
        self._stream.dead.append(
            DeadLetter(
                message_id=entry.message_id,
                group=self._group_name,
                consumer=self._consumer,
                reason=reason,
                error=error,
                topic=entry.topic,
                payload=payload,
                deliveries=entry.deliveries,
            )
        )
        await self.ack(entry.message_id)

    async def close_gap(self, gap: TrimGap) -> None:
        return  # never trimmed: there are no gaps

    async def forget_idle_consumers(self, idle_seconds: float) -> int:
        return 0  # consumers exist only as owners of pending entries here

    def _claim(self, wanted: _Filter, count: int) -> list[StreamEntry]:
        now = asyncio.get_running_loop().time()
        claimed: list[StreamEntry] = []
        for index, pending in sorted(self._group.pending.items()):
            if len(claimed) == count:
                break
            if wanted(pending, now):
                pending.consumer, pending.since = self._consumer, now
                pending.deliveries += 1
                claimed.append(self._entry(index, pending.deliveries))
        return claimed

    def _entry(self, index: int, deliveries: int) -> StreamEntry:
        topic, payload = self._stream.entries[index]
        return StreamEntry(_message_id(index), topic, payload, deliveries)
