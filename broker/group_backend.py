"""What `broker.durable.GroupConsumer` asks of a broker, and the values they trade.

Split from `broker/durable.py` so each broker's half (broker/redis_streams.py,
broker/memory_streams.py) depends on this small contract — the entry, the
backend protocol, the settings and counters — and not on the consumer's logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from broker.protocol import DeadLetterReason, Healer, TrimGap
from schemas import (
    InvalidEventDataError,
    InvalidEventError,
    OversizedEventError,
    UnknownEventTypeError,
)


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry as a backend read it; `payload` is None when it is gone (trimmed)."""

    message_id: str
    topic: str | None
    payload: str | bytes | None
    deliveries: int


@dataclass(slots=True)
class DurableCounters:
    """Counts over every consumer of one broker (for metrics)."""

    delivered: int = 0  # valid messages handed to a consumer
    redelivered: int = 0  # ... of which were claimed again (after a failure or a death)
    acked: int = 0
    invalid: int = 0  # refused by validation
    dead_lettered: int = 0  # invalid ones, too-often-delivered ones, rejected ones
    gone: int = 0  # pending entries trimmed from the stream before anyone handled them
    trim_gaps: int = 0  # gaps found (new entries trimmed unread, or `gone` ones)
    unhealed_gaps: int = 0  # ... skipped, for want of a `heal` callback


class GroupBackend(Protocol):
    """What a broker does for one consumer of one group; raises `BrokerUnavailableError`."""

    async def ensure_group(self, *, from_start: bool) -> None: ...

    async def read_own_pending(self, count: int) -> list[StreamEntry]: ...

    async def read_new(self, count: int, block_seconds: float) -> list[StreamEntry] | TrimGap:
        """New entries; or, reading nothing, the gap between the group's position and
        the stream's first entry when entries were trimmed unread."""
        ...

    async def close_gap(self, gap: TrimGap) -> None:
        """Move the group past a healed gap (unless another consumer already did)."""
        ...

    async def claim_idle(self, min_idle_seconds: float, count: int) -> list[StreamEntry]: ...

    async def ack(self, message_id: str) -> None: ...

    async def dead_letter(self, entry: StreamEntry, reason: DeadLetterReason, error: str) -> None:
        """Store the entry in the dead-letter stream and acknowledge it, atomically."""
        ...

    async def forget_idle_consumers(self, idle_seconds: float) -> int:
        """Remove consumers with nothing pending that have not read for `idle_seconds`."""
        ...


def refusal_reason(exc: InvalidEventError) -> DeadLetterReason:
    if isinstance(exc, OversizedEventError):
        return DeadLetterReason.OVERSIZED
    if isinstance(exc, UnknownEventTypeError):
        return DeadLetterReason.UNKNOWN_TYPE
    if isinstance(exc, InvalidEventDataError):
        return DeadLetterReason.INVALID_DATA
    return DeadLetterReason.MALFORMED


def as_text(raw: str | bytes) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class ConsumeSettings:
    """`ConsumeOptions` with the defaults filled in: the one place they are set."""

    batch_size: int = 16
    block_seconds: float = 1.0
    claim_idle_seconds: float = 30.0
    max_deliveries: int = 5
    from_start: bool = False
    heal: Healer | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_deliveries < 1:
            raise ValueError("batch_size and max_deliveries must be at least 1")
        if self.block_seconds <= 0 or self.claim_idle_seconds <= 0:
            raise ValueError("block_seconds and claim_idle_seconds must be positive")
