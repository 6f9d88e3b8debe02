"""The outbox relay: publish what a recording activity could not.

Rows are claimed with `FOR UPDATE SKIP LOCKED`, so any number of workers can
relay at once; a row is only taken after a grace period, so the relay does not
race the activity that is about to mark its own row published.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from broker import BrokerError, EventBroker, topic_for
from store import Outbox

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        outbox: Outbox,
        broker: EventBroker,
        *,
        grace: timedelta,
        poll_interval: float,
        batch_size: int,
        publish_timeout: float,
    ) -> None:
        self._outbox = outbox
        self._broker = broker
        self._grace = grace
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._publish_timeout = publish_timeout

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; returns how many were published."""
        published: list[int] = []
        async with self._outbox.claim(grace=self._grace, limit=self._batch_size) as batch:
            for pending in batch.events:
                try:
                    async with asyncio.timeout(self._publish_timeout):
                        await self._broker.publish(
                            topic_for(pending.task_id), pending.envelope_json
                        )
                except (BrokerError, TimeoutError) as exc:
                    await batch.mark_failed(pending.outbox_id, str(exc) or type(exc).__name__)
                    log.warning(
                        "relay publish failed",
                        extra={"task_id": pending.task_id, "sequence": pending.sequence},
                    )
                    break  # keep per-task order: try the rest on the next round
                published.append(pending.outbox_id)
                log.info(
                    "relayed pending event",
                    extra={"task_id": pending.task_id, "sequence": pending.sequence},
                )
            await batch.mark_published(published)
        return len(published)

    async def run(self) -> None:
        backoff = self._poll_interval
        while True:
            try:
                count = await self.relay_once()
                backoff = self._poll_interval
                if count >= self._batch_size:
                    continue  # more may be waiting
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay round failed")
                backoff = min(backoff * 2, 30.0)
            await asyncio.sleep(backoff)
