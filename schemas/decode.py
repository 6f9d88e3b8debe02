"""`decode_event`: the one way a consumer turns broker bytes into an event.

Everything a broker hands over is untrusted: another process, an older or
newer release, or a person with `redis-cli` may have published it. The
decoder refuses anything that is not exactly a Taskplane event, and says why
through the `InvalidEventError` subclass it raises (see `schemas.errors`), so
a consumer can count, log and dead-letter by reason and carry on.

Validation is strict about types: a `"3"` where the contract says integer is
refused, not coerced, because a consumer in another language validating the
same bytes against `schemas/json/` would refuse it too. It is tolerant about
additions: unknown `data` fields and well-formed unknown extension attributes
are accepted and ignored (a newer producer may add them; docs/events.md).
"""

from __future__ import annotations

from pydantic import ValidationError

from schemas.envelope import REQUIRED_ATTRIBUTES, EventEnvelope
from schemas.errors import MAX_EVENT_BYTES, MalformedEventError, OversizedEventError, describe
from schemas.registry import read_data
from schemas.size import encoded_size


def decode_event(raw: str | bytes) -> EventEnvelope:
    """Parse and validate one serialized event (envelope with `sequence`, and its data).

    Raises `OversizedEventError`, `MalformedEventError`, `UnknownEventTypeError`
    or `InvalidEventDataError` (all `schemas.InvalidEventError`).
    """
    # Measured before parsing, so an oversized payload costs no parse.
    size = encoded_size(raw)
    if size > MAX_EVENT_BYTES:
        raise OversizedEventError(size)
    try:
        envelope = EventEnvelope.model_validate_json(raw)
    except ValidationError as exc:
        raise MalformedEventError(f"malformed event envelope: {describe(exc)}") from exc
    # Defaults make envelopes easy to build, but on the wire every attribute
    # Taskplane emits must be present (CloudEvents requires four of them anyway).
    missing = REQUIRED_ATTRIBUTES - envelope.model_fields_set
    if missing:
        raise MalformedEventError(f"malformed event envelope: missing {', '.join(sorted(missing))}")
    read_data(envelope.type, envelope.data)
    return envelope
