"""Persist an event, then ring the broker: the one recording path of the worker.

Used by the `record_event` local activity (task-level events from the
workflow) and directly by step activities (their own step events), so a
progress tick costs no Temporal round trip.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from broker import BrokerError, EventBroker, topic_for
from schemas import EventEnvelope, check_size, validate_data
from schemas.tasks import RecordEventResult
from store import EventStore, Outbox

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(
        self,
        store: EventStore,
        outbox: Outbox,
        broker: EventBroker,
        *,
        publish_timeout: float = 1.0,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._broker = broker
        self._publish_timeout = publish_timeout

    async def record(
        self, *, event_id: str, task_id: str, event_type: str, data: dict[str, Any]
    ) -> RecordEventResult:
        """Validate, append (dedupe by id), publish; a publish failure leaves the row pending.

        Raises `schemas.InvalidEventError` before anything is written when the
        data does not match the type's model, or `OversizedEventError` (one of
        them) when the envelope would exceed 64 KiB.
        """
        model = validate_data(event_type, data)
        # Built from the validated model, never from the caller's dict: one canonical shape.
        envelope = EventEnvelope(
            id=event_id,
            type=event_type,
            subject=task_id,
            time=datetime.now(UTC),
            data=model.model_dump(mode="json"),
        )
        check_size(envelope)
        appended = await self._store.append(envelope)
        fields = {"task_id": task_id, "event_type": event_type, "sequence": appended.sequence}
        if appended.duplicate:
            log.info("event already recorded", extra=fields)
            return RecordEventResult(sequence=appended.sequence, duplicate=True)
        try:
            async with asyncio.timeout(self._publish_timeout):
                await self._broker.publish(topic_for(task_id), appended.envelope_json)
        except (BrokerError, TimeoutError) as exc:
            # The outbox row stays pending; the relay publishes it later.
            log.warning(
                "publish failed; left to the outbox relay", extra={**fields, "error": str(exc)}
            )
        else:
            assert appended.outbox_id is not None
            await self._outbox.mark_published(appended.outbox_id)
        log.debug("event recorded", extra=fields)
        return RecordEventResult(sequence=appended.sequence, duplicate=False)
