"""Durable event handlers: every event, to every registered handler, with one effect each.

Each `EventHandler` is a consumer group of its own (its `name`), so handlers
progress independently and a slow webhook never holds back another handler.
The runner consumes the group at least once (`EventBroker.consume`) and makes
the effect happen once through `processed_events`: the handler runs inside
the transaction that records `(handler name, event id)`, and writes its own
rows through the connection it is given, so the mark and the effect commit
together. Only then is the message acknowledged. A crash anywhere before the
acknowledgement means a redelivery, which finds the mark and only acknowledges.

A handler that raises is retried — the message stays pending and is claimed
again after `claim_idle_seconds` — and dead-lettered after `max_deliveries`.
A handler that knows it can never succeed raises `PermanentHandlerError` to
dead-letter the message at once.

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

Handlers are registered in code (`HandlerRunner.register`) or named in
`TASKPLANE_EVENT_HANDLERS` as `module:attribute` paths to `EventHandler` objects.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from prometheus_client import Histogram
from psycopg import AsyncConnection

from broker import (
    BrokerError,
    BrokerNotConnectedError,
    DurableConsumer,
    DurableMessage,
    EventBroker,
    TrimGap,
)
from schemas import EventEnvelope, InvalidEventError, decode_event, upcast
from settings import Settings
from store.processed import ProcessedEvents
from store.published import PublishedEvents
from telemetry.metrics import LabelledValues, Metrics, ReadEach
from worker.cancel import cancel_until_done

log = logging.getLogger(__name__)

HandlerFunc = Callable[[EventEnvelope, AsyncConnection], Awaitable[None]]

RESTART_DELAY_SECONDS = 1.0


def handler_seconds(metrics: Metrics) -> Histogram:
    """One handling: its time, by handler and outcome (handled, duplicate, failed, gave_up,
    skipped: not the handler's concern, acknowledged only); the `_count` by outcome is
    the handlers' error rate."""
    return metrics.histogram(
        "taskplane_handler_seconds",
        "Time a durable event handler took for one event, by handler and outcome",
        ("handler", "outcome"),
        (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30),
    )


class PermanentHandlerError(Exception):
    """Raised by a handler that can never succeed with this event: dead-letter it now."""


class HealInterruptedError(RuntimeError):
    """The runner was stopped in the middle of a heal (the gap stays, and is healed later)."""


class HandlerConfigurationError(ValueError):
    """A `TASKPLANE_EVENT_HANDLERS` entry that does not name an `EventHandler`."""


@dataclass(frozen=True, slots=True)
class EventHandler:
    """One durable handler. `name` is its consumer group and its key in `processed_events`."""

    name: str
    handle: HandlerFunc
    event_types: frozenset[str] | None = None  # None: every type
    # A cheap test run before anything is written: an event it rejects is only
    # acknowledged, with no `processed_events` mark (it has no effect to make once).
    applies_to: Callable[[EventEnvelope], Awaitable[bool]] | None = None

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types

    async def concerns(self, envelope: EventEnvelope) -> bool:
        if not self.wants(envelope.type):
            return False
        return self.applies_to is None or await self.applies_to(envelope)


@dataclass(slots=True)
class HandlerCounters:
    handled: int = 0  # effects committed
    duplicates: int = 0  # deliveries of an event already processed: acknowledged only
    failures: int = 0  # handler errors (the message is retried, then dead-lettered)
    skipped: int = 0  # events the handler does not concern itself with: acknowledged only
    trim_gaps: int = 0  # gaps healed from the store
    healed: int = 0  # ... events handled from the store (missed in a gap)


def default_consumer_name() -> str:
    """Unique per process; a dead process's pending messages are claimed by the living."""
    return f"{socket.gethostname()}-{os.getpid()}"


def load_handlers(spec: str) -> list[EventHandler]:
    """`"pkg.module:attr, other.module:attr"` → the `EventHandler` objects they name."""
    handlers = []
    for path in (part.strip() for part in spec.split(",")):
        if not path:
            continue
        module_name, _, attribute = path.partition(":")
        try:
            handler = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            raise HandlerConfigurationError(f"cannot load event handler {path!r}: {exc}") from exc
        if not isinstance(handler, EventHandler):
            raise HandlerConfigurationError(f"{path!r} is not an EventHandler")
        handlers.append(handler)
    return handlers


class HandlerRunner:
    def __init__(
        self,
        broker: EventBroker,
        processed: ProcessedEvents,
        *,
        consumer: str | None = None,
        claim_idle_seconds: float = 30.0,
        max_deliveries: int = 5,
        block_seconds: float = 1.0,
        batch_size: int = 16,
        seconds: Histogram | None = None,
        heal_margin_seconds: float = 120.0,
    ) -> None:
        self._broker = broker
        # Without a runtime (a test's runner): a histogram nobody serves.
        self._seconds = seconds or handler_seconds(Metrics())
        self._processed = processed
        self._published = PublishedEvents(processed.pool)
        self._heal_margin = heal_margin_seconds
        self._consumer = consumer or default_consumer_name()
        self._claim_idle = claim_idle_seconds
        self._max_deliveries = max_deliveries
        self._block = block_seconds
        self._batch_size = batch_size
        self._handlers: dict[str, EventHandler] = {}
        self._consumers: set[DurableConsumer] = set()
        self._stopping = False
        self.counters = HandlerCounters()
        # Per handler, for metrics: gaps healed, and events handled from the store then.
        self.gaps_healed: dict[str, int] = {}
        self.events_healed: dict[str, int] = {}

    def _observe(self, handler: str, outcome: str, started: float) -> None:
        self._seconds.labels(handler, outcome).observe(time.perf_counter() - started)

    @property
    def handlers(self) -> Sequence[EventHandler]:
        return list(self._handlers.values())

    def register(self, handler: EventHandler) -> None:
        if handler.name in self._handlers:
            raise HandlerConfigurationError(f"two event handlers are named {handler.name!r}")
        self._handlers[handler.name] = handler

    def stop(self) -> None:
        """End every handler loop after its current read (at most `block_seconds`).

        Stop with this, not by cancelling `run()`: a cancellation that lands inside
        redis-py's blocking XREADGROUP can leave the task hanging (seen in tests), while
        closing a consumer only ends its iteration once the read returns.
        """
        self._stopping = True
        for consumer in list(self._consumers):
            consumer.close()

    async def run(self) -> None:
        """Consume for every handler until `stop()` or the broker closes."""
        if not self._handlers:
            log.info("no durable event handlers registered")
            return
        log.info(
            "durable event handlers started",
            extra={"handlers": sorted(self._handlers), "consumer": self._consumer},
        )
        async with asyncio.TaskGroup() as group:
            for handler in self._handlers.values():
                group.create_task(self._run_one(handler), name=f"handler-{handler.name}")

    async def _run_one(self, handler: EventHandler) -> None:
        while not self._stopping:
            try:
                async with self._broker.consume(
                    handler.name,
                    consumer=self._consumer,
                    claim_idle_seconds=self._claim_idle,
                    max_deliveries=self._max_deliveries,
                    block_seconds=self._block,
                    batch_size=self._batch_size,
                    heal=partial(self._heal, handler),
                ) as consumer:
                    self._consumers.add(consumer)
                    if self._stopping:  # stopped while joining the group
                        consumer.close()
                    try:
                        async for message in consumer:
                            await self._handle(handler, consumer, message)
                    finally:
                        self._consumers.discard(consumer)
                return  # stopped, or the broker closed
            except BrokerNotConnectedError:
                return  # closed before (or while) joining the group
            except Exception:
                # A bug or an unforeseen failure must not stop this handler for good.
                log.exception(
                    "event handler loop failed; restarting", extra={"handler": handler.name}
                )
                await asyncio.sleep(RESTART_DELAY_SECONDS)

    async def _handle(
        self, handler: EventHandler, consumer: DurableConsumer, message: DurableMessage
    ) -> None:
        envelope = message.envelope
        fields = {
            "handler": handler.name,
            "event_id": envelope.id,
            "event_type": envelope.type,
            "task_id": envelope.subject,
            "sequence": envelope.sequence,
            "deliveries": message.deliveries,
        }
        started = time.perf_counter()
        try:
            await self._apply(handler, envelope, fields, started)
        except PermanentHandlerError as exc:
            await self._quietly(consumer.dead_letter(message, str(exc)), fields)
            return
        except Exception:
            log.exception("event handler failed; the event will be retried", extra=fields)
            return
        await self._quietly(consumer.ack(message), fields)

    async def _apply(
        self,
        handler: EventHandler,
        envelope: EventEnvelope,
        fields: Mapping[str, object],
        started: float,
    ) -> str:
        """Handle one event once: its outcome (handled, duplicate, skipped); raises on failure."""
        if not await handler.concerns(envelope):
            self.counters.skipped += 1
            self._observe(handler.name, "skipped", started)
            return "skipped"
        try:
            async with self._processed.first_time(handler.name, envelope.id) as conn:
                if conn is not None:
                    await handler.handle(envelope, conn)
        except PermanentHandlerError as exc:
            self.counters.failures += 1
            self._observe(handler.name, "gave_up", started)
            log.warning("event handler gave up", extra={**fields, "error": str(exc)})
            raise
        except Exception:
            self.counters.failures += 1
            self._observe(handler.name, "failed", started)
            raise
        if conn is None:
            self.counters.duplicates += 1
            self._observe(handler.name, "duplicate", started)
            log.info("event already processed; acknowledging", extra=fields)
            return "duplicate"
        self.counters.handled += 1  # committed, with its processed mark
        self._observe(handler.name, "handled", started)
        return "handled"

    async def _heal(self, handler: EventHandler, gap: TrimGap) -> None:
        """Handle, from the store, every event the gap may have held (see the module doc).

        Raises when it could not finish (the consumer keeps the gap and calls again)."""
        lower = datetime.fromtimestamp(gap.after_ms / 1000 - self._heal_margin, UTC)
        outcomes: dict[str, int] = {}
        async for text in self._published.since(lower):
            if self._stopping:  # the gap is kept: the next start heals it
                raise HealInterruptedError(f"handler {handler.name} stopped while healing")
            try:
                # As on the stream, handlers see the latest version (schemas/upcast.py).
                envelope = upcast(decode_event(text))
            except InvalidEventError as exc:  # the store keeps only valid events: a bug
                log.error("stored event not decodable; not healed", extra={"error": str(exc)})
                continue
            fields = {
                "handler": handler.name,
                "event_id": envelope.id,
                "event_type": envelope.type,
                "task_id": envelope.subject,
                "sequence": envelope.sequence,
                "healing": True,
            }
            try:
                outcome = await self._apply(handler, envelope, fields, time.perf_counter())
            except PermanentHandlerError:
                outcome = "gave_up"
            if outcome == "handled":
                self.counters.healed += 1
                self.events_healed[handler.name] = self.events_healed.get(handler.name, 0) + 1
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        self.counters.trim_gaps += 1
        self.gaps_healed[handler.name] = self.gaps_healed.get(handler.name, 0) + 1
        log.warning(
            "trim gap healed from the store",
            extra={
                "handler": handler.name,
                "after_id": gap.after_id,
                "before_id": gap.before_id,
                "since": lower.isoformat(),
                **outcomes,
            },
        )

    def register_metrics(self, metrics: Metrics) -> None:
        """Trim gaps healed and events healed, per registered handler (0 until one)."""

        def per_handler(counts: dict[str, int]) -> ReadEach:
            def read() -> LabelledValues:
                return [(float(counts.get(name, 0)), {"handler": name}) for name in self._handlers]

            return read

        metrics.counters(
            "taskplane_handler_trim_gaps",
            "Trim gaps a durable handler healed (stream entries trimmed before it read them)",
            per_handler(self.gaps_healed),
        )
        metrics.counters(
            "taskplane_handler_healed_events",
            "Events a durable handler missed in a trim gap and handled from the store",
            per_handler(self.events_healed),
        )

    @staticmethod
    async def _quietly(command: Awaitable[None], fields: Mapping[str, object]) -> None:
        try:
            await command
        except BrokerError as exc:
            # Still pending in the group: it is claimed again, found processed, and acked then.
            log.warning("could not acknowledge; left pending", extra={**fields, "error": str(exc)})


def build_handler_runner(
    broker: EventBroker,
    processed: ProcessedEvents,
    settings: Settings,
    metrics: Metrics | None = None,
) -> HandlerRunner:
    """The worker's runner, with the handlers `TASKPLANE_EVENT_HANDLERS` names (none by default)."""
    runner = HandlerRunner(
        broker,
        processed,
        claim_idle_seconds=settings.handler_claim_idle_seconds,
        max_deliveries=settings.handler_max_deliveries,
        block_seconds=settings.handler_block_seconds,
        seconds=handler_seconds(metrics) if metrics is not None else None,
        heal_margin_seconds=settings.handler_heal_margin_seconds,
    )
    if metrics is not None:
        runner.register_metrics(metrics)
    for handler in load_handlers(settings.event_handlers):
        runner.register(handler)
    return runner


async def stop_handlers(
    runner: HandlerRunner, running: asyncio.Task[None], *, grace_seconds: float = 10.0
) -> None:
    """Stop `runner` (see `HandlerRunner.stop`) and wait for it; cancel only as a last resort."""
    runner.stop()
    try:
        await asyncio.wait_for(asyncio.shield(running), grace_seconds)
    except TimeoutError:
        log.warning("durable handlers did not stop in time; cancelling them")
        await cancel_until_done([running])
