"""After the commit: publish the new events, best effort, in one broker round trip.

The recorder's events of one commit (one event, a task's batch, or a group commit's
events of several tasks: activities/group_commit.py) go out in one publish. Everything
here is best effort and bounded by the publish timeout: the events are safe in the
store with their outbox rows pending, so a publish that fails (or a mark that fails)
never fails a recording. A failed publish hands the rows to the outbox relay at once
(`Outbox.hand_over`, which also wakes the relays of every worker through NOTIFY) and
tells this process's relay; the first publish that works again after failures says so
too, so relays backing off retry the backlog now rather than at their next poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

import psycopg

from activities.published_marks import PublishedMarks
from broker import BrokerError, EventBroker, topic_for
from store import AppendResult, Outbox, OutboxNotice
from telemetry.publish import PublishTimer

log = logging.getLogger(__name__)

# A committed new event and its log fields (task_id, event_type, sequence, event_id).
Fresh = tuple[AppendResult, dict[str, Any]]


class PublishListener(Protocol):
    """This process's outbox relay, as the recorder sees it (`worker.relay.OutboxRelay`)."""

    def publish_failed(self) -> None:
        """A row was handed over: publish it soon."""
        ...

    def publish_recovered(self) -> None:
        """The broker took a publish again after failures: stop backing off."""
        ...


class CommitPublisher:
    def __init__(
        self,
        outbox: Outbox,
        broker: EventBroker,
        *,
        publish_timeout: float,
        listener: PublishListener | None,
        timer: PublishTimer,
        mark_delay: float,
    ) -> None:
        self._outbox = outbox
        self._broker = broker
        self._publish_timeout = publish_timeout
        self._listener = listener
        self._timer = timer
        # Set by a failed publish, cleared (and announced) by the next one that works.
        self._failing = False
        self._marks = PublishedMarks(outbox, delay=mark_delay, timeout=publish_timeout)

    async def flush_marks(self) -> None:
        await self._marks.flush()

    async def publish(self, fresh: Sequence[Fresh]) -> None:
        """One publish (one round trip) for the events of one commit; on failure, all
        of them go to the outbox relay."""
        first = fresh[0][1]
        messages = [
            (topic_for(fields["task_id"]), appended.envelope_json) for appended, fields in fresh
        ]
        try:
            with self._timer.timed(first["task_id"], first["event_type"]):
                async with asyncio.timeout(self._publish_timeout):
                    if len(messages) == 1:
                        await self._broker.publish(*messages[0])
                    else:
                        await self._broker.publish_batch(messages)
        except (BrokerError, TimeoutError) as exc:
            self._failing = True
            error = str(exc) or type(exc).__name__
            for appended, fields in fresh:
                assert appended.outbox_id is not None
                log.warning(
                    "publish failed; handed to the outbox relay", extra={**fields, "error": error}
                )
                await self._bookkeep(self._outbox.hand_over(appended.outbox_id, error), fields)
            if self._listener is not None:
                self._listener.publish_failed()
            return
        if self._failing:
            self._failing = False
            log.info("publishing works again; waking the outbox relays", extra=first)
            await self._bookkeep(self._outbox.notify(OutboxNotice.BROKER_BACK), first)
            if self._listener is not None:
                self._listener.publish_recovered()
        for appended, _ in fresh:
            assert appended.outbox_id is not None
            self._marks.add(appended.outbox_id)  # marked with others, a moment later

    async def _bookkeep(self, update: Awaitable[None], fields: dict[str, Any]) -> None:
        """An outbox update after the commit: bounded, and never a recording's failure.

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
