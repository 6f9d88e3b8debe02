"""Live broker messages, decoded once per process and framed once per version.

The fan-out hands every subscriber of a topic the same payload string, so the
hundreds of streams that follow one task all ask about the same object. Each
payload is decoded (strictly, `schemas.decode_event`) by the first stream that
meets it; the others find the result here, and with it the SSE frame's bytes,
built once per requested version (`?version=`). Measured before this cache:
the full pydantic decode per subscriber was ~7 µs of a ~110 µs delivery.

The cache is small and bounded (entries and bytes): a message is only looked
up while its fan-out is in flight, a few milliseconds; a payload met again
after eviction is decoded again, which costs time, never correctness.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas import InvalidEventError, decode_event

MAX_ENTRIES = 256
MAX_BYTES = 8 * 1024 * 1024


class LiveEvent:
    """What a stream needs of one live message, plus its frames (by version) once built."""

    __slots__ = ("event_type", "frames", "payload", "sequence", "subject")

    def __init__(self, payload: str, subject: str, sequence: int, event_type: str) -> None:
        self.payload = payload
        self.subject = subject
        self.sequence = sequence
        self.event_type = event_type
        self.frames: dict[str, bytes] = {}

    def frame(self, version: str, build: Callable[[], bytes]) -> bytes:
        """The frame for `version`, built by `build()` the first time it is asked for."""
        frame = self.frames.get(version)
        if frame is None:
            frame = self.frames[version] = build()
        return frame


class LiveDecoder:
    """payload → `LiveEvent` (None: not a valid event), for the process's streams."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._cache: dict[str, LiveEvent | None] = {}
        self.decoded = 0  # payloads decoded (a miss); hits are the rest

    def decode(self, payload: str) -> LiveEvent | None:
        try:
            return self._cache[payload]  # the shared string's hash is computed once
        except KeyError:
            pass
        self.decoded += 1
        try:
            envelope = decode_event(payload)
        except InvalidEventError:
            found = None
        else:
            sequence = envelope.sequence
            found = (
                None
                if sequence is None
                else LiveEvent(payload, envelope.subject, sequence, envelope.type)
            )
        self._remember(payload, found)
        return found

    def _remember(self, payload: str, found: LiveEvent | None) -> None:
        size = len(payload)
        while self._cache and (
            len(self._cache) >= self._max_entries or self._bytes + size > self._max_bytes
        ):
            oldest = next(iter(self._cache))
            del self._cache[oldest]
            self._bytes -= len(oldest)
        if size <= self._max_bytes:
            self._cache[payload] = found
            self._bytes += size


# One per process: every stream of every app in it shares the decoding.
LIVE = LiveDecoder()
