"""Durable, at-least-once consumption of the event stream by consumer groups.

Both brokers consume through `GroupConsumer`, the way both subscribe through
`Fanout`: what a broker provides is a `GroupBackend` (read new entries, claim
idle ones, acknowledge, dead-letter); what an entry means — valid event, bad
bytes, a message that keeps failing, one trimmed away — is decided here once.

One `__anext__`, in order of preference:

    1. this consumer's own pending entries, once, when it starts (a consumer
       that restarts under the same name picks up where it died);
    2. every `claim_idle / 2` seconds: entries of ANY consumer of the group that
       have been pending longer than `claim_idle` are claimed — a dead
       consumer's work, or a failed handler's retry;
    3. new entries, waiting up to `block_seconds` for one.

An entry claimed more than `max_deliveries` times, or that is not a valid
event (`schemas.decode_event` says why), is dead-lettered and acknowledged;
the consumer goes on. Broker outages are waited out with backoff (doubling up to
`retry_cap`: 5 s, or on a Redis Cluster its failover poll): nothing is lost,
since an entry leaves the group only when acknowledged.

Trimming is the one way entries leave a stream unread: a group that falls
behind the stream's cap. A backend reports it as a `TrimGap` (its position
older than the stream's first entry; or a pending entry whose payload is gone)
instead of reading past it, and the consumer hands the gap to its `heal`
callback (the durable handlers read the missed events from the store) before
it moves on: only a healed gap is closed (`close_gap`) or its gone entry
acknowledged, so a crash while healing finds the gap again. Without a `heal`
callback the gap is skipped, loudly (an ERROR line and a count).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable

from broker.backoff import BACKOFF_CAP, BACKOFF_INITIAL, ReconnectBackoff
from broker.group_backend import (
    ConsumeSettings,
    DurableCounters,
    GroupBackend,
    StreamEntry,
    as_text,
    refusal_reason,
)
from broker.protocol import BrokerUnavailableError, DeadLetterReason, DurableMessage, TrimGap
from schemas import InvalidEventError, decode_event, upcast

log = logging.getLogger(__name__)

# Every process joins under a new name (host-pid), so a group collects the names of dead
# workers; once they hold nothing pending and have been silent this long, they are removed.
FORGET_CONSUMERS_AFTER_SECONDS = 3600.0
FORGET_EVERY_SECONDS = 600.0
# How much of a refused payload goes into the log line; the dead-letter entry keeps it all.
LOGGED_PAYLOAD_CHARS = 4096


class GroupConsumer:
    """One consumer of one group; implements `broker.protocol.DurableConsumer`."""

    def __init__(
        self,
        backend: GroupBackend,
        *,
        group: str,
        consumer: str,
        counters: DurableCounters,
        is_closed: Callable[[], bool],
        settings: ConsumeSettings,
        retry_cap: float = BACKOFF_CAP,
    ) -> None:
        self._backend = backend
        self._group = group
        self._consumer = consumer
        self._counters = counters
        self._is_closed = is_closed
        self._batch_size = settings.batch_size
        self._block = settings.block_seconds
        self._claim_idle = settings.claim_idle_seconds
        self._max_deliveries = settings.max_deliveries
        self._heal = settings.heal
        self._buffer: deque[StreamEntry] = deque()
        self._from_start = settings.from_start
        self._group_ready = False
        self._closed = False
        self._own_pending_read = False
        self._next_claim = 0.0
        self._next_forget = 0.0
        self._backoff = ReconnectBackoff(retry_cap)
        self._warned_at = -math.inf
        self._heal_backoff = ReconnectBackoff()
        self._fields = {"group": group, "consumer": consumer}

    @property
    def group(self) -> str:
        return self._group

    @property
    def consumer(self) -> str:
        return self._consumer

    async def start(self) -> None:
        """Create the group if it does not exist; during an outage, leave that to the reads."""
        try:
            await self._backend.ensure_group(from_start=self._from_start)
            self._group_ready = True
        except BrokerUnavailableError as exc:
            log.warning("consumer group not created yet", extra={**self._fields, "error": str(exc)})

    def close(self) -> None:
        """End the iteration (the consume context was left)."""
        self._closed = True

    def _stopped(self) -> bool:
        return self._closed or self._is_closed()

    def __aiter__(self) -> GroupConsumer:
        return self

    async def __anext__(self) -> DurableMessage:
        while not self._stopped():
            try:
                if not self._buffer:
                    self._buffer.extend(await self._fetch())
                while self._buffer:
                    message = await self._admit(self._buffer.popleft())
                    if message is not None:
                        self._backoff.delay = BACKOFF_INITIAL
                        return message
                self._backoff.delay = BACKOFF_INITIAL
            except BrokerUnavailableError as exc:
                # What could not be read, acked or set aside stays pending in the
                # group and is claimed again: waiting out the outage loses nothing.
                if self._stopped():
                    break
                now = asyncio.get_running_loop().time()
                warn = now - self._warned_at >= BACKOFF_CAP  # short retries: one line a while
                if warn:
                    self._warned_at = now
                log.log(
                    logging.WARNING if warn else logging.DEBUG,
                    "durable consumer cannot reach the broker; retrying in %.1f s",
                    self._backoff.delay,
                    extra={**self._fields, "error": str(exc)},
                )
                await asyncio.sleep(self._backoff.after_failed_connect())
        raise StopAsyncIteration

    async def ack(self, message: DurableMessage) -> None:
        await self._backend.ack(message.message_id)
        self._counters.acked += 1

    async def dead_letter(self, message: DurableMessage, error: str) -> None:
        entry = StreamEntry(message.message_id, message.topic, message.payload, message.deliveries)
        await self._set_aside(entry, DeadLetterReason.REJECTED, error)

    async def _fetch(self) -> list[StreamEntry]:
        if not self._group_ready:
            await self._backend.ensure_group(from_start=self._from_start)
            self._group_ready = True
        if not self._own_pending_read:
            own = await self._backend.read_own_pending(self._batch_size * 64)
            self._own_pending_read = True
            if own:
                log.info("own pending messages", extra={**self._fields, "count": len(own)})
                return own
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_forget:
            self._next_forget = loop.time() + FORGET_EVERY_SECONDS
            forgotten = await self._backend.forget_idle_consumers(FORGET_CONSUMERS_AFTER_SECONDS)
            if forgotten:
                log.info("forgot idle consumers", extra={**self._fields, "count": forgotten})
        if loop.time() >= self._next_claim:
            self._next_claim = loop.time() + self._claim_idle / 2
            claimed = await self._backend.claim_idle(self._claim_idle, self._batch_size)
            if claimed:
                log.info("claimed idle messages", extra={**self._fields, "count": len(claimed)})
                return claimed
        block = min(self._block, max(self._next_claim - loop.time(), 0.01))
        read = await self._backend.read_new(self._batch_size, block)
        if isinstance(read, TrimGap):
            if await self._healed(read):
                await self._backend.close_gap(read)
            return []
        return read

    async def _healed(self, gap: TrimGap) -> bool:
        """Heal `gap` (or, with no healer, skip it loudly); False: try again later."""
        fields = {**self._fields, "after_id": gap.after_id, "before_id": gap.before_id}
        self._counters.trim_gaps += 1
        if self._heal is None:
            self._counters.unhealed_gaps += 1
            log.error("entries were trimmed from the stream unread; skipped", extra=fields)
            return True
        log.warning("entries were trimmed from the stream unread; healing", extra=fields)
        try:
            await self._heal(gap)
        except Exception as exc:  # noqa: BLE001 -- any failure: keep the gap, heal it later
            # Kept: the gap is found again by the next read, and healed then.
            log.warning("trim gap not healed yet", extra={**fields, "error": str(exc)})
            await asyncio.sleep(self._heal_backoff.after_failed_connect())
            return False
        self._heal_backoff.delay = BACKOFF_INITIAL
        log.info("trim gap healed", extra=fields)
        return True

    async def _admit(self, entry: StreamEntry) -> DurableMessage | None:
        """The entry as a message to handle, or None once it was set aside."""
        fields = {**self._fields, "message_id": entry.message_id, "deliveries": entry.deliveries}
        if entry.payload is None:
            # Delivered, never acknowledged, then trimmed: heal it like a gap of one entry;
            # unhealed, it stays pending and is claimed (and found gone) again.
            if await self._healed(TrimGap.around(entry.message_id)):
                self._counters.gone += 1
                log.warning(
                    "pending message was trimmed from the stream; acknowledged", extra=fields
                )
                await self._backend.ack(entry.message_id)
            return None
        if entry.deliveries > self._max_deliveries:
            error = f"delivered {entry.deliveries - 1} times without being acknowledged"
            await self._set_aside(entry, DeadLetterReason.MAX_DELIVERIES, error)
            return None
        try:
            # Handlers see the latest version of each type (schemas/upcast.py).
            envelope = upcast(decode_event(entry.payload))
        except InvalidEventError as exc:
            self._counters.invalid += 1
            log.warning(
                "invalid message refused",
                extra={
                    **fields,
                    "reason": refusal_reason(exc).value,
                    "error": str(exc),
                    "raw": as_text(entry.payload)[:LOGGED_PAYLOAD_CHARS],
                },
            )
            await self._set_aside(entry, refusal_reason(exc), str(exc))
            return None
        self._counters.delivered += 1
        if entry.deliveries > 1:
            self._counters.redelivered += 1
        return DurableMessage(
            message_id=entry.message_id,
            topic=entry.topic or "",
            envelope=envelope,
            payload=as_text(entry.payload),
            deliveries=entry.deliveries,
        )

    async def _set_aside(self, entry: StreamEntry, reason: DeadLetterReason, error: str) -> None:
        await self._backend.dead_letter(entry, reason, error)
        self._counters.dead_lettered += 1
        log.warning(
            "message dead-lettered",
            extra={
                **self._fields,
                "message_id": entry.message_id,
                "reason": reason.value,
                "error": error,
            },
        )
