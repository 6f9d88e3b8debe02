"""How many SSE streams a process holds at once, and what its streams counted.

One `StreamGate` per app (= per process) caps the open streams (`SSE_MAX_STREAMS`,
past it a 503 before any store or Temporal work) and carries the app's
`StreamCounters`, which each `TaskEventStream` (api/streaming.py) adds to and the
metrics export. Kept apart from the stream itself: admission and counting are the
process's concern, not one client's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class StreamCounters:
    """One app's stream counts an operator watches (exported as metrics)."""

    open_streams: int = 0
    heals: int = 0  # catch-ups from the store, for either reason below
    gap_heals: int = 0  # a live `sequence` jumped
    resync_heals: int = 0  # the broker said "you may have missed some" (overflow, reconnect)
    dropped_duplicates: int = 0
    invalid_messages: int = 0
    idle_timeouts: int = 0
    send_timeouts: int = 0
    rejected: int = 0  # answered 503: the process was at its stream cap
    store_fallbacks: int = 0  # streams that started without a live subscription (Redis away)
    store_polls: int = 0  # store reads standing in for live delivery while Redis was away
    stream_errors: int = 0  # streams ended by an `event: error` frame
    store_retries: int = 0  # store reads tried again after the store did not answer


class StreamGate:
    """At most `limit` streams at once; the API holds one gate per app (= per process),
    and with it the counts of the app's streams."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the stream limit must be at least 1, got {limit}")
        self.limit = limit
        self.open = 0
        self.counters = StreamCounters()

    @property
    def full(self) -> bool:
        return self.open >= self.limit

    def try_acquire(self) -> bool:
        if self.full:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1
