"""Heal a durable handler's trim gap from the store, so a trimmed stream loses it nothing.

A handler whose group fell behind the stream's cap finds a trim gap
(`broker.TrimGap`: entries trimmed before it read them). It heals from the
store before it reads on: every event published since the gap began (less
`heal_margin_seconds` for clock skew; `store.published`) goes through the same
`concerns` + `processed_events` path, oldest first, so what it already handled
is a duplicate and what it missed gets its one effect. Counted in
`taskplane_handler_trim_gaps_total` and `taskplane_handler_healed_events_total`.
A failing heal keeps the gap and is tried again; an event the handler gives up
on (`PermanentHandlerError`) during a heal is logged and counted (there is no
stream entry to dead-letter).

Split from worker/handlers.py: reading the store back is a job of its own, which
the runner hands its one-event path (`apply`) to.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from broker import TrimGap
from schemas import EventEnvelope, InvalidEventError, decode_event, upcast
from store.published import PublishedEvents

log = logging.getLogger(__name__)

# One event, handled once: its outcome (handled, duplicate, skipped, gave_up).
Apply = Callable[[EventEnvelope, Mapping[str, object]], Awaitable[str]]


class HealInterruptedError(RuntimeError):
    """The runner was stopped in the middle of a heal (the gap stays, and is healed later)."""


async def heal_gap(
    published: PublishedEvents,
    handler: str,
    gap: TrimGap,
    *,
    margin_seconds: float,
    apply: Apply,
    stopping: Callable[[], bool],
) -> None:
    """Apply every event the gap may have held, from the store, oldest first.

    Raises when it could not finish (the consumer keeps the gap and calls again)."""
    lower = datetime.fromtimestamp(gap.after_ms / 1000 - margin_seconds, UTC)
    outcomes: dict[str, int] = {}
    async for text in published.since(lower):
        if stopping():  # the gap is kept: the next start heals it
            raise HealInterruptedError(f"handler {handler} stopped while healing")
        try:
            # As on the stream, handlers see the latest version (schemas/upcast.py).
            envelope = upcast(decode_event(text))
        except InvalidEventError as exc:  # the store keeps only valid events: a bug
            log.error("stored event not decodable; not healed", extra={"error": str(exc)})
            continue
        fields = {
            "handler": handler,
            "event_id": envelope.id,
            "event_type": envelope.type,
            "task_id": envelope.subject,
            "sequence": envelope.sequence,
            "healing": True,
        }
        outcome = await apply(envelope, fields)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    log.warning(
        "trim gap healed from the store",
        extra={
            "handler": handler,
            "after_id": gap.after_id,
            "before_id": gap.before_id,
            "since": lower.isoformat(),
            **outcomes,
        },
    )
