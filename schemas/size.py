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


# Free text (reasons, error messages) gets at most this much of an event: an operator's
# 70 KB terminate reason or a step's huge traceback must never make its event oversized,
# which would leave the task without the event at all.
MAX_TEXT_BYTES = 8 * 1024
TRUNCATION_MARK = "…[truncated {cut} bytes]"


def cap_text(text: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes, the cut marked with how much went."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    mark_room = len(TRUNCATION_MARK.format(cut=len(raw)).encode())
    kept = raw[: max(0, max_bytes - mark_room)].decode(errors="ignore")
    return kept + TRUNCATION_MARK.format(cut=len(raw) - len(kept.encode()))


def cap_optional_text(text: str | None, max_bytes: int = MAX_TEXT_BYTES) -> str | None:
    return None if text is None else cap_text(text, max_bytes)


# The free-text fields of the catalogue: what people and exceptions write, unbounded.
FREE_TEXT_FIELDS = frozenset({"reason", "error", "message", "identity"})


def cap_free_text(data: dict[str, object]) -> dict[str, object]:
    """`data` with every free-text field capped (`cap_text`); other fields untouched.

    The recorder applies it to every event, so no caller (the workflow, a step, a
    plugin, the reconciler) can make an event oversized through a reason or an error."""
    if not any(isinstance(data.get(name), str) for name in FREE_TEXT_FIELDS):
        return data
    return {
        key: cap_text(value) if key in FREE_TEXT_FIELDS and isinstance(value, str) else value
        for key, value in data.items()
    }
