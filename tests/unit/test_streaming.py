"""The stream's rules, with the in-memory broker and an in-memory history.

The same rules run against Postgres and Redis in the end-to-end tests; here we
can make the broker lose, repeat and reorder messages on purpose.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from datetime import UTC, datetime

import orjson
import pytest
from psycopg_pool import PoolTimeout

from api.stream_events import OutgoingEvent
from api.stream_gate import StreamCounters, StreamGate
from api.streaming import TaskEventStream
from broker import MemoryBroker, topic_for
from schemas import EventEnvelope
from schemas.examples import EXAMPLE_DATA
from store import StoredEvent
from tests.polling import until

TASK = "00000000-0000-4000-8000-000000000001"


class ListHistory:
    def __init__(self) -> None:
        self.events: list[StoredEvent] = []

    def add(self, event_type: str = "task.step.progress.v1") -> str:
        sequence = len(self.events) + 1
        envelope = EventEnvelope(
            id=f"e{sequence}",
            type=event_type,
            subject=TASK,
            time=datetime.now(UTC),
            data=EXAMPLE_DATA[event_type],
        ).with_sequence(sequence)
        text = envelope.to_json()
        self.events.append(StoredEvent(sequence, event_type, text))
        return text

    async def history(self, task_id: str, *, after: int = 0, limit: int = 100) -> list[StoredEvent]:
        return [e for e in self.events if e.sequence > after][:limit]

    async def last_sequence(self, task_id: str) -> int | None:
        return len(self.events) if self.events else None


async def run_stream(
    history: ListHistory,
    broker: MemoryBroker,
    *,
    after: int = 0,
    live: bool = True,
    queue_size: int = 16,
    idle_timeout: float = 30.0,
    counters: StreamCounters | None = None,
) -> tuple[asyncio.Task[list[OutgoingEvent]], asyncio.Event]:
    subscribed = asyncio.Event()
    stream = TaskEventStream(
        TASK,
        after=after,
        history=live,
        store=history,
        broker=broker,
        queue_size=queue_size,
        page_size=3,
        idle_timeout=idle_timeout,
        counters=counters,
    )

    async def consume() -> list[OutgoingEvent]:
        out: list[OutgoingEvent] = []
        async for event in stream.events():
            out.append(event)
            subscribed.set()
        return out

    task = asyncio.create_task(consume())
    return task, subscribed


async def until_subscribed(broker: MemoryBroker) -> None:
    await until(
        lambda: topic_for(TASK) in broker.fanout, within=1, what="the stream's subscription"
    )


async def test_history_then_live_without_repeats() -> None:
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    for _ in range(4):
        history.add()
    task, _ = await run_stream(history, broker)
    await until_subscribed(broker)
    # The broker repeats events the history already gave: they must be dropped.
    for event in history.events[2:]:
        await broker.publish(topic_for(TASK), event.envelope_json)
    await broker.publish(topic_for(TASK), history.add())
    await broker.publish(topic_for(TASK), history.add("task.completed.v1"))
    events = await asyncio.wait_for(task, 5)
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[-1].terminal


async def test_a_gap_is_healed_from_the_store() -> None:
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    task, _ = await run_stream(history, broker)
    await until_subscribed(broker)
    await broker.publish(topic_for(TASK), history.add())
    lost = [history.add() for _ in range(5)]  # never reach the broker
    assert lost
    await broker.publish(topic_for(TASK), history.add("task.completed.v1"))
    events = await asyncio.wait_for(task, 5)
    assert [e.sequence for e in events] == list(range(1, 8))


async def test_an_overflowing_client_catches_up_from_the_store() -> None:
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    task, _ = await run_stream(history, broker, queue_size=2)
    await until_subscribed(broker)
    for _ in range(30):  # no await between publishes: the client cannot keep up
        await broker.publish(topic_for(TASK), history.add())  # MemoryBroker never yields here
    await broker.publish(topic_for(TASK), history.add("task.failed.v1"))
    events = await asyncio.wait_for(task, 5)
    assert [e.sequence for e in events] == list(range(1, 32))


async def test_resume_after_and_live_only() -> None:
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    for _ in range(5):
        history.add()
    resumed, _ = await run_stream(history, broker, after=3)
    live_only, _ = await run_stream(history, broker, live=False)
    for _ in range(100):
        if broker.fanout.subscriber_count >= 2:
            break
        await asyncio.sleep(0.005)
    await broker.publish(topic_for(TASK), history.add("task.cancelled.v1"))
    assert [e.sequence for e in await asyncio.wait_for(resumed, 5)] == [4, 5, 6]
    assert [e.sequence for e in await asyncio.wait_for(live_only, 5)] == [6]
    assert broker.fanout.subscriber_count == 0  # both released their subscription


async def test_live_events_are_forwarded_without_touching_the_store_again() -> None:
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    history.add("task.created.v1")
    reads: list[int] = []
    read = history.history

    async def counting(task_id: str, *, after: int = 0, limit: int = 100) -> list[StoredEvent]:
        reads.append(after)
        return await read(task_id, after=after, limit=limit)

    history.history = counting  # type: ignore[method-assign]
    counters = StreamCounters()
    task, _ = await run_stream(history, broker, counters=counters)
    await until_subscribed(broker)
    for _ in range(5):
        await broker.publish(topic_for(TASK), history.add())
    await broker.publish(topic_for(TASK), history.add("task.completed.v1"))
    events = await asyncio.wait_for(task, 5)
    assert [e.sequence for e in events] == list(range(1, 8))
    assert reads == [0]  # the history read only; every live event came from the broker
    assert counters.heals == 0


async def test_heals_are_counted_by_reason() -> None:
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    counters = StreamCounters()
    task, _ = await run_stream(history, broker, counters=counters)
    await until_subscribed(broker)
    history.add("task.created.v1")  # never published: the next one shows a gap
    await broker.publish(topic_for(TASK), history.add())
    await until(lambda: counters.gap_heals == 1, within=5, what="the gap's heal")
    history.add()  # lost in the "reconnect"
    broker.simulate_reconnect()
    await until(lambda: counters.resync_heals == 1, within=5, what="the resync's heal")
    await broker.publish(topic_for(TASK), history.add("task.completed.v1"))
    events = await asyncio.wait_for(task, 5)
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert (counters.gap_heals, counters.resync_heals, counters.heals) == (1, 1, 2)


async def test_a_forged_or_invalid_live_message_is_skipped_and_counted() -> None:
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    history.add("task.created.v1")
    counters = StreamCounters()
    task, subscribed = await run_stream(history, broker, counters=counters)
    await asyncio.wait_for(subscribed.wait(), 5)
    real = history.add()
    forged = orjson.loads(real)
    forged["type"] = "task.exploded.v1"  # right task, right next sequence, unknown type
    other_task = orjson.loads(real)
    other_task["subject"] = "00000000-0000-4000-8000-000000000002"
    for junk in ("not json", orjson.dumps(forged).decode(), orjson.dumps(other_task).decode()):
        await broker.publish(topic_for(TASK), junk)
    await broker.publish(topic_for(TASK), real)
    await broker.publish(topic_for(TASK), history.add("task.completed.v1"))
    events = await asyncio.wait_for(task, 5)
    assert [e.envelope_json for e in events] == [e.envelope_json for e in history.events]
    assert counters.invalid_messages == 3


async def test_a_live_event_from_a_newer_producer_is_forwarded_as_sent() -> None:
    """Tolerant reader: an added data field or extension is neither refused nor healed away."""
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    history.add("task.created.v1")
    counters = StreamCounters()
    task, subscribed = await run_stream(history, broker, counters=counters)
    await asyncio.wait_for(subscribed.wait(), 5)
    newer = orjson.loads(history.add())
    newer["data"]["eta_seconds"] = 4.5
    newer["partitionkey"] = "tenant-a"
    text = orjson.dumps(newer).decode()
    history.events[-1] = StoredEvent(history.events[-1].sequence, newer["type"], text)
    await broker.publish(topic_for(TASK), text)
    await broker.publish(topic_for(TASK), history.add("task.completed.v1"))
    events = await asyncio.wait_for(task, 5)
    assert [e.envelope_json for e in events] == [e.envelope_json for e in history.events]
    assert orjson.loads(events[1].envelope_json)["data"]["eta_seconds"] == 4.5
    assert (counters.invalid_messages, counters.heals) == (0, 0)


async def test_an_idle_stream_ends_cleanly_and_releases_its_subscription() -> None:
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    history.add("task.created.v1")
    counters = StreamCounters()
    task, _ = await run_stream(history, broker, idle_timeout=0.3, counters=counters)
    await until_subscribed(broker)
    # Time itself is what this shows: the event comes after 2/3 of the idle timeout,
    # and the stream outlives the first 0.3 s because the event restarted its clock.
    await asyncio.sleep(0.2)
    await broker.publish(topic_for(TASK), history.add())  # an event restarts the idle clock
    events = await asyncio.wait_for(task, 5)
    assert [e.sequence for e in events] == [1, 2]
    assert counters.idle_timeouts == 1
    assert broker.fanout.subscriber_count == 0


async def test_closing_the_stream_mid_way_releases_everything_at_once() -> None:
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    for _ in range(5):
        history.add()
    counters = StreamCounters()
    stream = TaskEventStream(
        TASK,
        after=0,
        history=True,
        store=history,
        broker=broker,
        queue_size=4,
        page_size=2,
        counters=counters,
    )
    async with aclosing(stream.events()) as events:
        first = await anext(events)  # suspended at a yield inside a history page
        assert first.sequence == 1
        assert broker.fanout.subscriber_count == 1
        assert counters.open_streams == 1
    # No await in between: the subscription went with the generator, not with the GC.
    assert broker.fanout.subscriber_count == 0
    assert counters.open_streams == 0


def test_the_stream_gate_counts_and_refuses_past_its_limit() -> None:
    gate = StreamGate(2)
    assert gate.try_acquire()
    assert gate.try_acquire()
    assert gate.full
    assert not gate.try_acquire()
    gate.release()
    assert gate.open == 1
    assert gate.try_acquire()
    with pytest.raises(ValueError, match="at least 1"):
        StreamGate(0)


class StoreAway(ListHistory):
    """A store whose next `failures` reads time out (no pooled connection in time)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def history(self, task_id: str, *, after: int = 0, limit: int = 100) -> list[StoredEvent]:
        if self.failures:
            self.failures -= 1
            raise PoolTimeout("couldn't get a connection after 5.00 sec")
        return await super().history(task_id, after=after, limit=limit)


async def test_a_store_that_does_not_answer_is_waited_out_not_an_error() -> None:
    broker, history = MemoryBroker(), StoreAway(failures=2)
    await broker.connect()
    history.add("task.created.v1")
    history.add()
    history.add("task.completed.v1")
    counters = StreamCounters()
    task, _ = await run_stream(history, broker, counters=counters)
    events = await asyncio.wait_for(task, 10)
    assert [e.sequence for e in events] == [1, 2, 3]
    assert counters.store_retries == 2


async def test_a_store_away_past_the_idle_timeout_ends_the_stream_with_its_error() -> None:
    broker, history = MemoryBroker(), StoreAway(failures=1_000)
    await broker.connect()
    history.add("task.created.v1")
    task, _ = await run_stream(history, broker, idle_timeout=0.5)
    with pytest.raises(PoolTimeout):
        await asyncio.wait_for(task, 10)
