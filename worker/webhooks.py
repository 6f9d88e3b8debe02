"""Webhooks, worker side: the durable handler that enqueues deliveries, and the sender.

Two halves, both safe with any number of workers:

* `webhook_handler(store)` is a durable `EventHandler` (consumer group `webhooks`).
  For an event of a task whose webhook wants it, it writes delivery rows inside
  the transaction that marks the event processed, so each event gets its row
  once however often the broker delivers it (store/webhooks.py explains the order
  rules). The insert sends a Postgres NOTIFY, delivered at commit, that wakes
  every worker's sender at once.
* `WebhookDispatcher` leases due deliveries (at most one per task at a time, the
  oldest pending one) and POSTs each event's envelope, signed as the Standard
  Webhooks spec says: `webhook-id` (the event id, the same on every retry, so a
  receiver can dedupe), `webhook-timestamp`, `webhook-signature` (`v1,<HMAC>`).
  A 2xx marks it delivered, and it is never sent again; anything else is retried
  with exponential back-off and jitter until `webhook_max_attempts` or
  `webhook_max_age_seconds`, then it is `failed` and the task's next event goes.
  A 410 Gone disables the endpoint (`webhook_disable_on_gone`).

Before every attempt the URL's host is resolved and checked again (SSRF, DNS
rebinding: outbound/addresses.py) and the request goes to the address that was
checked. Connections are not kept alive, so a TLS connection made for one host
name is never reused for another name on the same address.

A worker stopped mid-send leaves a leased delivery that another worker retries
once the lease ends: a receiver may then see an event twice, with the same
`webhook-id` (at-least-once, as every webhook sender).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import psycopg
from prometheus_client import Histogram
from psycopg import AsyncConnection
from standardwebhooks import Webhook

from outbound import DestinationRefusedError, check_destination
from outbound.addresses import IPAddress
from schemas import EventEnvelope
from settings import Settings
from store.webhooks import NOTIFY_CHANNEL, ClaimedDelivery, WebhookStore
from telemetry.metrics import Metrics
from worker.handlers import EventHandler

log = logging.getLogger(__name__)

HANDLER_NAME = "webhooks"
USER_AGENT = "Taskplane-Webhooks/1"
RETRY_FACTOR = 4.0
MAX_ERROR_LENGTH = 500
STATS_REFRESH_SECONDS = 5.0
LISTEN_RETRY_SECONDS = (0.5, 5.0)  # reconnect back-off of the NOTIFY listener: first, cap


# --- the durable handler ------------------------------------------------------------------


async def enqueue_deliveries(event: EventEnvelope, conn: AsyncConnection) -> None:
    if event.sequence is None:  # never for a stored event; nothing to order it by
        log.warning("event without sequence; no webhook delivery", extra={"event_id": event.id})
        return
    added = await WebhookStore.enqueue_through(conn, event.subject, event.sequence)
    if added:
        log.debug(
            "webhook deliveries enqueued",
            extra={
                "task_id": event.subject,
                "event_type": event.type,
                "sequence": event.sequence,
                "deliveries": added,
            },
        )


class SubscribedTasks:
    """Which tasks have a webhook, looked up once per task instead of once per event.

    The answer never changes from no to yes: the API stores a subscription before
    it starts the task's workflow, so before the task's first event exists. Without
    this, every event of every task would cost a `processed_events` row and a
    locked lookup (docs/performance.md measured the handler at ~1.9 ms of CPU per event).
    """

    def __init__(self, store: WebhookStore, *, size: int = 10_000) -> None:
        self._store = store
        self._size = size
        self._known: OrderedDict[str, bool] = OrderedDict()

    async def __call__(self, event: EventEnvelope) -> bool:
        known = self._known.get(event.subject)
        if known is None:
            known = await self._store.has_subscription(event.subject)
            self._known[event.subject] = known
            if len(self._known) > self._size:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(event.subject)
        return known


def webhook_handler(store: WebhookStore) -> EventHandler:
    """The built-in handler; every event type (the per-task type filter is applied in SQL)."""
    return EventHandler(
        name=HANDLER_NAME, handle=enqueue_deliveries, applies_to=SubscribedTasks(store)
    )


# --- metrics ------------------------------------------------------------------------------


@dataclass(slots=True)
class WebhookStats:
    """One dispatcher's figures, read at scrape time."""

    sent: int = 0  # acknowledged with a 2xx
    attempts_failed: int = 0  # attempts answered otherwise, or not at all
    failed: int = 0  # deliveries given up on
    pending: int = 0  # refreshed by the sender from the store
    oldest_pending_seconds: float = 0.0
    latency_seconds_sum: float = 0.0  # from the event's recording to its acknowledgement
    latency_count: int = 0


LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


def register_webhook_metrics(metrics: Metrics, stats: WebhookStats) -> None:
    """Export a dispatcher's figures in its runtime's metrics."""
    figures: list[tuple[str, str, Callable[[], float], bool]] = [
        ("taskplane_webhook_deliveries_sent", "Webhook deliveries acknowledged (2xx)",
         lambda: stats.sent, True),
        ("taskplane_webhook_attempts_failed", "Webhook attempts that got no 2xx",
         lambda: stats.attempts_failed, True),
        ("taskplane_webhook_deliveries_failed", "Webhook deliveries given up on",
         lambda: stats.failed, True),
        ("taskplane_webhook_deliveries_pending", "Webhook deliveries not yet done",
         lambda: stats.pending, False),
        ("taskplane_webhook_oldest_pending_seconds", "Age of the oldest pending delivery",
         lambda: stats.oldest_pending_seconds, False),
    ]  # fmt: skip
    for name, description, read, counter in figures:
        (metrics.counter if counter else metrics.gauge)(name, description, read)


def latency_histogram(metrics: Metrics) -> Histogram:
    return metrics.histogram(
        "taskplane_webhook_delivery_latency_seconds",
        "Seconds from an event's recording to its acknowledged webhook delivery",
        (),
        LATENCY_BUCKETS,
    )


# --- the sender -------------------------------------------------------------------------


def retry_delay(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds before the attempt after `attempt`: base * 4^(attempt-1), capped, jittered.

    `jitter` in [0, 1) spreads retries over the upper half of the interval, so the
    deliveries of an endpoint that came back do not all retry in the same instant.
    """
    return min(cap, base * RETRY_FACTOR ** (attempt - 1)) * (0.5 + jitter / 2)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    timeout_seconds: float
    max_attempts: int
    max_age_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float
    lease_seconds: float
    poll_seconds: float
    batch_size: int
    allow_private_networks: bool
    disable_on_gone: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            max_attempts=settings.webhook_max_attempts,
            max_age_seconds=settings.webhook_max_age_seconds,
            retry_base_seconds=settings.webhook_retry_base_seconds,
            retry_max_seconds=settings.webhook_retry_max_seconds,
            lease_seconds=settings.webhook_lease_seconds,
            poll_seconds=settings.webhook_poll_seconds,
            batch_size=settings.webhook_batch_size,
            allow_private_networks=settings.webhook_allow_private_networks,
            disable_on_gone=settings.webhook_disable_on_gone,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None  # None: acknowledged

    @property
    def acknowledged(self) -> bool:
        return self.error is None


def signed_headers(delivery: ClaimedDelivery, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers; the id is the event id, stable across retries."""
    signature = Webhook(delivery.secret).sign(
        msg_id=delivery.event_id, timestamp=now, data=delivery.body
    )
    return {
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def pinned(url: httpx.URL, address: IPAddress) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """`url` aimed at `address`: the URL, headers and request extensions to send with.

    The connection goes to the address; `Host` and, for https, the TLS server name
    (SNI, and the name the certificate is verified against) stay the URL's host.
    """
    headers = {"host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return url.copy_with(host=str(address)), headers, extensions


class WebhookDispatcher:
    def __init__(
        self,
        store: WebhookStore,
        policy: DeliveryPolicy,
        *,
        listen_conninfo: str | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if policy.lease_seconds <= policy.timeout_seconds:
            raise ValueError("webhook_lease_seconds must exceed webhook_timeout_seconds")
        self._store = store
        self._policy = policy
        self._listen_conninfo = listen_conninfo
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._wake = asyncio.Event()
        self._stats_at = 0.0
        self.stats = WebhookStats()
        # Without a runtime (a test's dispatcher): figures nobody serves.
        self._latency = latency_histogram(metrics or Metrics())
        if metrics is not None:
            register_webhook_metrics(metrics, self.stats)

    async def run(self) -> None:
        """Send due deliveries until cancelled; several sends run at once, one per task."""
        inflight: set[asyncio.Task[None]] = set()
        listener = (
            asyncio.create_task(self._listen(self._listen_conninfo), name="webhook-listen")
            if self._listen_conninfo
            else None
        )
        async with httpx.AsyncClient(
            timeout=self._policy.timeout_seconds,
            follow_redirects=False,  # a redirect could lead anywhere, past the address check
            trust_env=False,  # connect to the checked address, not through a proxy
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
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
                for task in (*inflight, *([listener] if listener else [])):
                    task.cancel()
                await asyncio.gather(*inflight, return_exceptions=True)
                if listener is not None:
                    await asyncio.gather(listener, return_exceptions=True)

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        try:
            return await self._store.claim(limit=limit, lease_seconds=self._policy.lease_seconds)
        except psycopg.Error as exc:  # Postgres away: the poll tries again
            log.warning("could not claim webhook deliveries", extra={"error": str(exc)})
        except Exception:
            # A bug must not stop every webhook of this worker for good.
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

    async def _listen(self, conninfo: str) -> None:
        """Wake the loop on every NOTIFY (sent at the commit of new deliveries)."""
        delay = LISTEN_RETRY_SECONDS[0]
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    delay = LISTEN_RETRY_SECONDS[0]
                    self._wake.set()  # anything committed while not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except (psycopg.Error, OSError) as exc:
                log.warning(
                    "webhook NOTIFY listener lost; polling meanwhile", extra={"error": str(exc)}
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_SECONDS[1])

    def _observe_latency(self, seconds: float) -> None:
        self.stats.latency_seconds_sum += seconds
        self.stats.latency_count += 1
        self._latency.observe(seconds)

    async def _refresh_stats(self) -> None:
        if time.monotonic() - self._stats_at < STATS_REFRESH_SECONDS:
            return
        self._stats_at = time.monotonic()
        try:
            stats = await self._store.pending_stats()
        except psycopg.Error:
            return
        self.stats.pending, self.stats.oldest_pending_seconds = (
            stats.pending,
            stats.oldest_age_seconds,
        )

    async def _deliver(self, client: httpx.AsyncClient, delivery: ClaimedDelivery) -> None:
        fields = {
            "task_id": delivery.task_id,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "sequence": delivery.sequence,
            "webhook_attempt": delivery.attempt,
        }
        try:
            outcome = await self._send(client, delivery)
            await self._record(delivery, outcome, fields)
        except psycopg.Error as exc:
            # The lease ends and the delivery is tried again: at-least-once.
            log.warning("could not record a webhook outcome", extra={**fields, "error": str(exc)})
        except Exception:
            log.exception("webhook delivery failed unexpectedly", extra=fields)

    async def _send(self, client: httpx.AsyncClient, delivery: ClaimedDelivery) -> Outcome:
        try:
            addresses = await check_destination(
                delivery.url, allow_private=self._policy.allow_private_networks
            )
        except DestinationRefusedError as exc:
            return Outcome(None, str(exc))
        try:
            headers = signed_headers(delivery, datetime.now(UTC))
        except Exception as exc:  # noqa: BLE001 - a corrupt stored secret: fails like an attempt
            return Outcome(None, f"cannot sign with the stored secret: {type(exc).__name__}")
        url = httpx.URL(delivery.url)
        extensions: dict[str, str] = {}
        if addresses:  # connect to the address just checked, not to a new resolution
            url, pinning_headers, extensions = pinned(url, addresses[0])
            headers.update(pinning_headers)
        try:
            async with (
                asyncio.timeout(self._policy.timeout_seconds),
                client.stream(
                    "POST",
                    url,
                    content=delivery.body.encode(),
                    headers=headers,
                    extensions=extensions,
                ) as response,
            ):
                # The receiver's body is not read: its status is the whole answer.
                status = response.status_code
        except (httpx.HTTPError, TimeoutError) as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH])
        if 200 <= status < 300:
            return Outcome(status, None)
        return Outcome(status, f"HTTP {status}")

    async def _record(
        self, delivery: ClaimedDelivery, outcome: Outcome, fields: dict[str, object]
    ) -> None:
        if outcome.acknowledged:
            assert outcome.status_code is not None
            if await self._store.mark_delivered(delivery, outcome.status_code):
                self.stats.sent += 1
                latency = (datetime.now(UTC) - delivery.recorded_at).total_seconds()
                self._observe_latency(max(latency, 0.0))
                log.info("webhook delivered", extra={**fields, "status_code": outcome.status_code})
            return
        self.stats.attempts_failed += 1
        error = outcome.error or "failed"
        if outcome.status_code == 410 and self._policy.disable_on_gone:
            await self._store.disable(delivery.task_id, "the receiver answered 410 Gone")
            self.stats.failed += 1
            log.warning("webhook endpoint gone; disabled", extra={**fields, "status_code": 410})
            return
        delay = retry_delay(
            delivery.attempt,
            base=self._policy.retry_base_seconds,
            cap=self._policy.retry_max_seconds,
            jitter=self._rng.random(),
        )
        age = (datetime.now(UTC) - delivery.created_at).total_seconds()
        if (
            delivery.attempt >= self._policy.max_attempts
            or age + delay > self._policy.max_age_seconds
        ):
            if await self._store.mark_failed(
                delivery, status_code=outcome.status_code, error=error
            ):
                self.stats.failed += 1
                log.warning(
                    "webhook delivery failed for good",
                    extra={**fields, "status_code": outcome.status_code, "error": error},
                )
            return
        await self._store.retry_later(
            delivery, delay_seconds=delay, status_code=outcome.status_code, error=error
        )
        log.info(
            "webhook attempt failed; retrying",
            extra={
                **fields,
                "status_code": outcome.status_code,
                "error": error,
                "retry_in_seconds": round(delay, 3),
            },
        )


def start_webhooks(
    store: WebhookStore, settings: Settings, metrics: Metrics | None = None
) -> tuple[EventHandler, WebhookDispatcher]:
    """The worker's webhook handler (to register) and sender (to run)."""
    dispatcher = WebhookDispatcher(
        store,
        DeliveryPolicy.from_settings(settings),
        listen_conninfo=settings.require_database_url(),
        metrics=metrics,
    )
    return webhook_handler(store), dispatcher
