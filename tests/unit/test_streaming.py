"""The stream's rules, with the in-memory broker and an in-memory history.

The same rules run against Postgres and Redis in the end-to-end tests; here we
can make the broker lose, repeat and reorder messages on purpose.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from api.streaming import OutgoingEvent, TaskEventStream
from broker import MemoryBroker, topic_for
from schemas import EventEnvelope
from store import StoredEvent

TASK = "00000000-0000-4000-8000-000000000001"


class ListHistory:
    def __init__(self) -> None:
        self.events: list[StoredEvent] = []

    def add(self, event_type: str = "task.step.progress.v1") -> str:
        sequence = len(self.events) + 1
        envelope = EventEnvelope(
            id=f"e{sequence}", type=event_type, subject=TASK, time=datetime.now(UTC), data={}
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
    for _ in range(200):
        if topic_for(TASK) in broker.fanout:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("stream never subscribed")


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
