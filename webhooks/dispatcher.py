"""The webhook sender: leases due deliveries and POSTs them, safe with any number of workers.

At most one delivery per task is in flight (webhooks/store.py's claim). A 2xx marks it
delivered, never sent again; anything else goes by webhooks/policy.py. It looks for due
rows on a NOTIFY (sent by the recording statement: webhooks/enqueue.py), when one of its
sends ends (that task's next event may be due), and every `poll_seconds` (retries).

A worker stopped mid-send leaves a leased delivery that another worker retries once the
lease ends: a receiver may then see an event twice, with the same `webhook-id`
(at-least-once, as every webhook sender).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from settings import Settings
from store.listen import Listener
from webhooks.enqueue import NOTIFY_CHANNEL
from webhooks.metrics import WebhookStats
from webhooks.outbound import Outcome, http_client, post
from webhooks.policy import DeliveryPolicy, after_failure
from webhooks.store import ClaimedDelivery, WebhookStore

log = logging.getLogger(__name__)

STATS_REFRESH_SECONDS = 5.0  # how often the backlog (pending, oldest age) is read


class WebhookDispatcher:
    def __init__(
        self,
        store: WebhookStore,
        policy: DeliveryPolicy,
        *,
        listen_conninfo: str | None = None,
        rng: random.Random | None = None,
        stats_refresh_seconds: float = STATS_REFRESH_SECONDS,
    ) -> None:
        self._store = store
        self._policy = policy
        self._listener = (
            Listener(listen_conninfo, NOTIFY_CHANNEL, application_name="taskplane-webhooks")
            if listen_conninfo
            else None
        )
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._wake = asyncio.Event()
        self._stats = WebhookStats()
        self._stats_at = float("-inf")
        self._stats_refresh_seconds = stats_refresh_seconds
        self._latency_observers: list[Callable[[float], None]] = []

    @classmethod
    def from_settings(cls, pool: AsyncConnectionPool, settings: Settings) -> WebhookDispatcher:
        """The worker's sender: the policy from `settings`, woken by NOTIFY."""
        return cls(
            WebhookStore(pool),
            DeliveryPolicy.from_settings(settings),
            listen_conninfo=settings.require_database_direct_url(),  # LISTEN: session-bound
        )

    def stats(self) -> WebhookStats:
        """A copy of this dispatcher's figures (pending ones as of the last refresh)."""
        listening = self._listener is not None and self._listener.listening
        return replace(self._stats, listening=listening)

    def on_latency(self, observe: Callable[[float], None]) -> None:
        """Call `observe(seconds)` for each acknowledged delivery: recorded → acknowledged."""
        self._latency_observers.append(observe)

    async def run(self) -> None:
        """Send due deliveries until cancelled; several sends run at once, one per task."""
        inflight: set[asyncio.Task[None]] = set()
        listener = None
        if self._listener is not None:
            wake = self._listener.run(lambda _payload: self._wake.set())
            listener = asyncio.create_task(wake, name="webhook-listen")
        async with http_client(self._policy.timeout_seconds) as client:
            try:
                while True:
                    free = self._policy.batch_size - len(inflight)
                    claimed = await self._claim(free) if free > 0 else []
                    for delivery in claimed:
                        task = asyncio.create_task(self._deliver(client, delivery))
                        inflight.add(task)
                        task.add_done_callback(inflight.discard)
                    await self._refresh_stats()
                    if free > 0 and len(claimed) == free:
                        continue  # there may be more due right now
                    await self._idle(inflight)
            finally:
                background = [*inflight, *([listener] if listener else [])]
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        try:
            return await self._store.claim(limit=limit, lease_seconds=self._policy.lease_seconds)
        except psycopg.Error as exc:  # Postgres away: the poll tries again
            log.warning("could not claim webhook deliveries", extra={"error": str(exc)})
        except Exception:  # a bug must not stop every webhook of this worker for good
            log.exception("claiming webhook deliveries failed")
        return []

    async def _idle(self, inflight: set[asyncio.Task[None]]) -> None:
        """Until a NOTIFY, a send ending (its task's next event may be due), or the poll."""
        waiter = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait(
                {waiter, *inflight},
                timeout=self._policy.poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
            self._wake.clear()

    async def _refresh_stats(self) -> None:
        if time.monotonic() - self._stats_at < self._stats_refresh_seconds:
            return
        self._stats_at = time.monotonic()
        try:
            pending = await self._store.pending_stats()
        except psycopg.Error:
            return
        self._stats.pending = pending.pending
        self._stats.oldest_pending_seconds = pending.oldest_age_seconds

    async def _deliver(self, client: httpx.AsyncClient, delivery: ClaimedDelivery) -> None:
        fields = {
            "task_id": delivery.task_id,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "sequence": delivery.sequence,
            "webhook_attempt": delivery.attempt,
        }
        try:
            outcome = await post(client, delivery, self._policy)
            await self._record(delivery, outcome, fields)
        except psycopg.Error as exc:
            # The lease ends and the delivery is tried again: at-least-once.
            log.warning("could not record a webhook outcome", extra={**fields, "error": str(exc)})
        except Exception:
            log.exception("webhook delivery failed unexpectedly", extra=fields)

    async def _record(
        self, delivery: ClaimedDelivery, outcome: Outcome, fields: dict[str, object]
    ) -> None:
        now = datetime.now(UTC)
        if outcome.acknowledged:
            assert outcome.status_code is not None
            if await self._store.mark_delivered(delivery, outcome.status_code):
                latency = max((now - delivery.recorded_at).total_seconds(), 0.0)
                self._stats.delivered(latency)
                for observe in self._latency_observers:
                    observe(latency)
                log.info("webhook delivered", extra={**fields, "status_code": outcome.status_code})
            return
        self._stats.attempts_failed += 1
        code, error = outcome.status_code, outcome.error or "failed"
        fields = {**fields, "status_code": code, "error": error}
        step = after_failure(
            self._policy,
            attempt=delivery.attempt,
            status_code=code,
            age_seconds=(now - delivery.created_at).total_seconds(),
            jitter=self._rng.random(),
        )
        if step.action == "disable":
            await self._store.disable(delivery.task_id, "the receiver answered 410 Gone")
            self._stats.failed += 1
            log.warning("webhook endpoint gone; disabled", extra=fields)
        elif step.action == "give_up":
            if await self._store.mark_failed(delivery, status_code=code, error=error):
                self._stats.failed += 1
                log.warning("webhook delivery failed for good", extra=fields)
        else:
            delay = step.delay_seconds
            await self._store.retry_later(
                delivery, delay_seconds=delay, status_code=code, error=error
            )
            retry_in = round(delay, 3)
            log.info(
                "webhook attempt failed; retrying", extra={**fields, "retry_in_seconds": retry_in}
            )
