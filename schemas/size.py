"""The 64 KiB ceiling, measured the way an intermediary sees an event: UTF-8 bytes."""

from __future__ import annotations

from schemas.envelope import MAX_SEQUENCE, EventEnvelope
from schemas.errors import MAX_EVENT_BYTES, OversizedEventError

# The store splices `,"sequence":N` into the JSON at commit; reserve the widest N
# so an event accepted here can never grow past the limit afterwards.
_SEQUENCE_RESERVE = len(f',"sequence":{MAX_SEQUENCE}')


def encoded_size(raw: str | bytes) -> int:
    return len(raw) if isinstance(raw, bytes) else len(raw.encode())


def check_size(envelope: EventEnvelope) -> int:
    """The envelope's serialized size (with room for `sequence`); raises when over 64 KiB."""
    size = encoded_size(envelope.to_json())
    if envelope.sequence is None:
        size += _SEQUENCE_RESERVE
    if size > MAX_EVENT_BYTES:
        raise OversizedEventError(size)
    return size
