"""Persist an event, then ring the broker: the one recording path of the worker.

Used by the `record_event` local activity (task-level events from the
workflow) and directly by step activities (their own step events), so a
progress tick costs no Temporal round trip.

After the commit everything is best effort and bounded by the publish timeout:
the event is safe in the store and its outbox row pending, so a publish that
fails (or a mark that fails) never fails the activity. A failed publish hands
the row to the outbox relay at once (`Outbox.hand_over`, which also wakes the
relays of every worker through NOTIFY) and tells this process's relay; the
first publish that works again after failures says so too, so relays backing
off retry the backlog now rather than at their next poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg

from broker import BrokerError, EventBroker, topic_for
from schemas import EventEnvelope, check_size, validate_data
from schemas.tasks import RecordEventResult
from store import AppendResult, EventStore, Outbox, OutboxNotice
from telemetry.publish import timed_publish
from telemetry.tracing import current_trace_headers

log = logging.getLogger(__name__)

# Fault injection for tests only (see activities/faults.py): runs right after the commit,
# before the publish. Production never passes one.
AfterCommitHook = Callable[[str, AppendResult], None]


class PublishListener(Protocol):
    """This process's outbox relay, as the recorder sees it (`worker.relay.OutboxRelay`)."""

    def publish_failed(self) -> None:
        """A row was handed over: publish it soon."""
        ...

    def publish_recovered(self) -> None:
        """The broker took a publish again after failures: stop backing off."""
        ...


class EventRecorder:
    def __init__(
        self,
        store: EventStore,
        outbox: Outbox,
        broker: EventBroker,
        *,
        publish_timeout: float = 1.0,
        publish_listener: PublishListener | None = None,
        after_commit: AfterCommitHook | None = None,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._broker = broker
        self._publish_timeout = publish_timeout
        self._listener = publish_listener
        self._after_commit = after_commit
        # Set by a failed publish, cleared (and announced) by the next one that works.
        self._publish_failing = False

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
            **current_trace_headers(),  # traceparent/tracestate while tracing is on
        )
        check_size(envelope)
        appended = await self._store.append(envelope)
        fields = {
            "task_id": task_id,
            "event_type": event_type,
            "sequence": appended.sequence,
            "event_id": event_id,
        }
        if appended.duplicate:
            # Recorded before (a retry or a replay): that recording published it or
            # left it to the relay; publishing again here would only add a duplicate.
            log.info("event already recorded", extra=fields)
            return RecordEventResult(sequence=appended.sequence, duplicate=True)
        if self._after_commit is not None:
            self._after_commit(event_type, appended)
        await self._publish(appended, fields)
        log.debug("event recorded", extra=fields)
        return RecordEventResult(sequence=appended.sequence, duplicate=False)

    async def _publish(self, appended: AppendResult, fields: dict[str, Any]) -> None:
        assert appended.outbox_id is not None
        try:
            with timed_publish(fields["task_id"], fields["event_type"]):
                async with asyncio.timeout(self._publish_timeout):
                    await self._broker.publish(topic_for(fields["task_id"]), appended.envelope_json)
        except (BrokerError, TimeoutError) as exc:
            self._publish_failing = True
            error = str(exc) or type(exc).__name__
            log.warning(
                "publish failed; handed to the outbox relay", extra={**fields, "error": error}
            )
            await self._bookkeep(self._outbox.hand_over(appended.outbox_id, error), fields)
            if self._listener is not None:
                self._listener.publish_failed()
            return
        if self._publish_failing:
            self._publish_failing = False
            log.info("publishing works again; waking the outbox relays", extra=fields)
            await self._bookkeep(self._outbox.notify(OutboxNotice.BROKER_BACK), fields)
            if self._listener is not None:
                self._listener.publish_recovered()
        await self._bookkeep(self._outbox.mark_published(appended.outbox_id), fields)

    async def _bookkeep(self, update: Awaitable[None], fields: dict[str, Any]) -> None:
        """An outbox update after the commit: bounded, and never an activity failure.

        If it does not happen the row just stays pending (or keeps waiting for the
        grace period), and the relay publishes it, at worst once more.
        """
        try:
            async with asyncio.timeout(self._publish_timeout):
                await update
        except (psycopg.Error, TimeoutError) as exc:
            log.warning(
                "outbox update failed; the relay will see to the row",
                extra={**fields, "error": str(exc) or type(exc).__name__},
            )
