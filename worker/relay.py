"""The outbox relay: publish what a recording activity could not.

When it runs a round:

- at start-up (rows a dead worker left behind), then on a slow poll
  (`outbox_poll_seconds`) as a safety net;
- at once when this process's recorder hands a row over (`publish_failed`) or
  any worker's recorder does (Postgres NOTIFY on `store.outbox.OUTBOX_CHANNEL`,
  heard by `listen`), so a row another process could not publish does not wait
  for the poll;
- after a publish error it backs off (doubling up to `max_backoff`) and ignores
  "handed over" wake-ups, which during an outage only say the broker is still
  down; a "broker back" wake-up (a recorder's publish worked again) ends the
  back-off at once.

Claims are per task (`Outbox.claim`): several relays never publish one task's
rows at the same time, and each publishes them oldest first; a failure stops
the round, so a task's later row is never published before its earlier one by
the relay. Rows are marked in the claim's transaction: a relay that dies
mid-round leaves its rows pending, and they are published again (consumers
drop duplicates by event id and sequence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool

from activities.coalesce import RateGates
from activities.faults import kill_after_commit
from activities.recorder import EventRecorder, ResetDetails
from broker import BrokerError, EventBroker, topic_for
from broker.cancelling import cancel_until_done
from settings import Settings
from store import EventStore, Outbox, OutboxBacklog, OutboxNotice
from store.budget import EventBudget
from store.listen import Listener
from store.outbox import OUTBOX_CHANNEL
from telemetry.metrics import Metrics
from telemetry.publish import PublishTimer
from worker.limit_metrics import register_limit_metrics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RelayStats:
    """Counters since start, and the backlog as of the last refresh (cached for metrics)."""

    published: int = 0
    failed: int = 0
    rounds: int = 0
    pending: int = 0
    oldest_pending_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class RoundResult:
    published: int
    failed: bool  # a publish failed: back off
    full: bool  # the batch was full: more may be waiting


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
        max_backoff: float = 5.0,
        backlog_interval: float = 5.0,
    ) -> None:
        if grace.total_seconds() <= publish_timeout:
            log.warning(
                "outbox grace period is not longer than the publish timeout: the relay may"
                " publish rows the recorder is still publishing (harmless duplicates)",
                extra={"grace": grace.total_seconds(), "publish_timeout": publish_timeout},
            )
        self._outbox = outbox
        self._broker = broker
        self._grace = grace
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._publish_timeout = publish_timeout
        self._max_backoff = max(max_backoff, poll_interval)
        self._backlog_interval = backlog_interval
        self._backlog_at = float("-inf")
        self._wake = asyncio.Event()
        self._backing_off = False
        self._broker_back = False  # a "broker back" notice arrived during the current round
        self._listener: Listener | None = None
        self.stats = RelayStats()

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up (other workers' notices reach us)."""
        return self._listener is not None and self._listener.listening

    # --- wake-ups (PublishListener for this process's recorder, and NOTIFY) ------------

    def publish_failed(self) -> None:
        self.notice(OutboxNotice.HANDED_OVER)

    def publish_recovered(self) -> None:
        self.notice(OutboxNotice.BROKER_BACK)

    def notice(self, notice: OutboxNotice | None) -> None:
        """Run a round now; while backing off, only when the broker is back.

        During an outage every hand over says only that the broker is still down.
        None: the LISTEN (re)connected, and notices sent meanwhile are lost: look now.
        """
        if notice is OutboxNotice.BROKER_BACK:
            self._broker_back = True
        elif self._backing_off:
            return
        self._wake.set()

    # --- the rounds ------------------------------------------------------------------

    async def relay_once(self) -> RoundResult:
        """Publish one batch of claimable rows."""
        published: list[int] = []
        failed = False
        async with self._outbox.claim(grace=self._grace, limit=self._batch_size) as batch:
            for pending in batch.events:
                fields = {
                    "task_id": pending.task_id,
                    "sequence": pending.sequence,
                    "event_id": pending.event_id,
                }
                try:
                    async with asyncio.timeout(self._publish_timeout):
                        await self._broker.publish(
                            topic_for(pending.task_id), pending.envelope_json
                        )
                except (BrokerError, TimeoutError) as exc:
                    error = str(exc) or type(exc).__name__
                    await batch.mark_failed(pending.outbox_id, error)
                    self.stats.failed += 1
                    failed = True
                    log.warning("relay publish failed", extra={**fields, "error": error})
                    break  # the broker is likely down for all; keep per-task order
                published.append(pending.outbox_id)
                log.info("relayed pending event", extra=fields)
            await batch.mark_published(published)
        self.stats.published += len(published)
        self.stats.rounds += 1
        full = len(batch.events) >= self._batch_size and not failed
        return RoundResult(len(published), failed, full)

    async def refresh_backlog(self) -> OutboxBacklog:
        """Read the backlog now and cache it for the metrics."""
        backlog = await self._outbox.backlog()
        self.stats.pending = backlog.pending
        self.stats.oldest_pending_seconds = backlog.oldest_age_seconds
        self._backlog_at = time.monotonic()
        return backlog

    async def run(self, listen_conninfo: str | None = None) -> None:
        """Relay until cancelled; with `listen_conninfo`, also wake on other workers' NOTIFY."""
        listener = None
        if listen_conninfo is not None:
            self._listener = Listener(
                listen_conninfo,
                OUTBOX_CHANNEL,
                retry_cap=self._max_backoff,
                application_name="taskplane-outbox-relay",
            )
            listener = asyncio.create_task(self._listener.run(self._heard), name="outbox-listen")
        try:
            await self._loop()
        finally:
            await cancel_until_done((listener,))

    async def _loop(self) -> None:
        delay = self._poll_interval
        while True:
            self._wake.clear()
            self._broker_back = False
            try:
                result = await self.relay_once()
            except psycopg.Error as exc:
                log.warning("outbox relay round failed", extra={"error": str(exc)})
                result = RoundResult(0, failed=True, full=False)
            except Exception:
                log.exception("outbox relay round failed")
                result = RoundResult(0, failed=True, full=False)
            if result.failed:
                delay = min(delay * 2, self._max_backoff) if self._backing_off else delay
                self._backing_off = True
                if not self._broker_back:
                    self._wake.clear()  # hand overs during a failed round: the same outage
            else:
                delay = self._poll_interval
                self._backing_off = False
            await self._maybe_refresh_backlog(force=result.published > 0)
            if result.full:
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _maybe_refresh_backlog(self, *, force: bool) -> None:
        if not force and time.monotonic() - self._backlog_at < self._backlog_interval:
            return
        try:
            await self.refresh_backlog()
        except psycopg.Error as exc:
            log.debug("could not read the outbox backlog", extra={"error": str(exc)})

    def _heard(self, payload: str | None) -> None:
        try:
            self.notice(OutboxNotice(payload) if payload is not None else None)
        except ValueError:
            self.notice(None)  # an unknown notice still means "look"


def build_recorder_and_relay(
    settings: Settings,
    pool: AsyncConnectionPool,
    broker: EventBroker,
    *,
    reset_details: ResetDetails | None = None,
    metrics: Metrics | None = None,
) -> tuple[EventRecorder, OutboxRelay]:
    """The worker's recording path: the recorder, and the relay it wakes."""
    outbox = Outbox(pool)
    relay = OutboxRelay(
        outbox,
        broker,
        grace=timedelta(seconds=settings.outbox_grace_seconds),
        poll_interval=settings.outbox_poll_seconds,
        batch_size=settings.outbox_batch_size,
        publish_timeout=settings.publish_timeout_seconds,
        max_backoff=settings.relay_max_backoff_seconds,
        backlog_interval=settings.relay_backlog_seconds,
    )
    fault = settings.outbox_test_kill_after_commit
    if fault:
        log.critical("TEST ONLY fault injection on: SIGKILL after committing %s", fault)
    budget = EventBudget(settings.max_events_per_task)
    progress_rates = RateGates(settings.progress_max_rate, burst=settings.progress_burst)
    recorder = EventRecorder(
        EventStore(pool, budget=budget),
        outbox,
        broker,
        publish_timeout=settings.publish_timeout_seconds,
        publish_listener=relay,
        after_commit=kill_after_commit(fault) if fault else None,
        reset_details=reset_details,
        publish_timer=PublishTimer(metrics),
        progress_rates=progress_rates,
        max_group=settings.record_group_max,
        commits_in_flight=settings.record_commits_in_flight,
    )
    if metrics is not None:
        register_relay_metrics(metrics, relay)
        register_limit_metrics(metrics, budget, progress_rates)
    return recorder, relay


def register_relay_metrics(metrics: Metrics, relay: OutboxRelay) -> None:
    """Export the relay's counters and cached backlog."""
    stats = relay.stats
    metrics.gauge(
        "taskplane_outbox_pending", "outbox rows not yet published", lambda: stats.pending
    )
    metrics.gauge(
        "taskplane_outbox_oldest_pending_seconds",
        "age of the oldest unpublished outbox row",
        lambda: stats.oldest_pending_seconds,
    )
    metrics.counter(
        "taskplane_relay_published", "events the outbox relay published", lambda: stats.published
    )
    metrics.counter(
        "taskplane_relay_failed", "outbox relay publishes that failed", lambda: stats.failed
    )
