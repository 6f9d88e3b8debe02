"""The behaviour every `EventBroker` must show, written once and run against each one:
live subscriptions (bounded, resyncing) and durable consumption (at least once).

A test module subclasses `BrokerContract` as `Test…` and provides `make_broker`,
a fixture returning a factory of new, unconnected brokers. The base class builds
the connected `broker` fixture from it (closed after each test), so a broker
that needs a server gets a fresh one per test and no test sees another's state.

Waiting for "everything published so far was routed" uses a marker topic: every
broker delivers one publisher's messages in order through one reader per shard, so
once a later message on a topic of the same shard arrived, every earlier one was
routed (`shard_topics` makes a topic and its marker share a Redis Cluster hash tag).

Order: live messages of a topic arrive in publish order, and so do a topic's
durable messages; across topics the durable stream promises no order (a cluster's
stream is partitioned), so the order tests publish on one topic.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import orjson
import pytest

from broker import (
    BrokerNotConnectedError,
    BrokerStatus,
    ConsumeOptions,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    DurableConsumer,
    DurableMessage,
    EventBroker,
    Subscription,
)
from broker.fanout import Fanout
from schemas.examples import example_envelope

RESYNC = Delivery(payload=None, resync=True)


class ContractBroker(EventBroker, Protocol):
    """What the contract needs beyond `EventBroker`: the fan-out and the dead letters."""

    @property
    def fanout(self) -> Fanout: ...

    async def dead_letters(self, count: int = 100) -> list[DeadLetter]: ...


BrokerFactory = Callable[[], ContractBroker]


def new_topic() -> str:
    return f"task.{uuid.uuid4()}"


def shard_topics() -> tuple[str, str]:
    """Two topics in one Redis Cluster slot (one `{tag}`): a topic and its marker."""
    tag = uuid.uuid4()
    return f"task.{{{tag}}}", f"task.{{{tag}}}.marker"


async def receive(subscription: Subscription, within: float = 5.0) -> Delivery:
    delivery = await subscription.get(timeout=within)
    assert delivery is not None, f"nothing arrived on {subscription.topic} within {within} s"
    return delivery


async def drain(subscription: Subscription, quiet: float = 0.1) -> list[Delivery]:
    """Everything queued now, stopping at the first `quiet` seconds without a delivery."""
    deliveries = []
    while (delivery := await subscription.get(timeout=quiet)) is not None:
        deliveries.append(delivery)
    return deliveries


async def wait_until_routed(broker: ContractBroker, marker: Subscription) -> None:
    marker_payload = f"marker-{uuid.uuid4()}"
    await broker.publish(marker.topic, marker_payload)
    assert await receive(marker) == Delivery(payload=marker_payload)


class BrokerContract:
    @pytest.fixture
    def make_broker(self) -> BrokerFactory:
        raise NotImplementedError("a BrokerContract subclass provides `make_broker`")

    @pytest.fixture
    async def broker(self, make_broker: BrokerFactory) -> AsyncIterator[ContractBroker]:
        broker = make_broker()
        await broker.connect()
        try:
            yield broker
        finally:
            await broker.close()

    async def test_is_an_event_broker(self, broker: ContractBroker) -> None:
        assert isinstance(broker, EventBroker)

    async def test_connected_broker_reports_connected_and_answers_ping(
        self, broker: ContractBroker
    ) -> None:
        await broker.connect()  # idempotent
        assert broker.status() is BrokerStatus.CONNECTED
        assert await broker.ping() is True

    async def test_unconnected_broker_refuses_use(self, make_broker: BrokerFactory) -> None:
        broker = make_broker()
        assert broker.status() is BrokerStatus.DISCONNECTED
        assert await broker.ping() is False
        with pytest.raises(BrokerNotConnectedError):
            await broker.publish(new_topic(), "{}")
        with pytest.raises(BrokerNotConnectedError):
            async with broker.subscribe(new_topic()):
                pass
        await broker.close()

    async def test_subscribe_confirmed_then_publish_delivers(self, broker: ContractBroker) -> None:
        topic = new_topic()
        async with broker.subscribe(topic) as subscription:
            assert subscription.topic == topic
            await broker.publish(topic, '{"n": 1}')
            assert await receive(subscription) == Delivery(payload='{"n": 1}')

    async def test_messages_arrive_in_publish_order(self, broker: ContractBroker) -> None:
        topic = new_topic()
        async with broker.subscribe(topic) as subscription:
            for n in range(20):
                await broker.publish(topic, str(n))
            received = [(await receive(subscription)).payload for _ in range(20)]
        assert received == [str(n) for n in range(20)]

    async def test_publish_many_delivers_them_all_in_order_live_and_durably(
        self, broker: ContractBroker
    ) -> None:
        topic = new_topic()
        events = [valid_event() for _ in range(4)]
        async with (
            broker.consume("batches", consumer="c1", block_seconds=0.1) as consumer,
            broker.subscribe(topic) as subscription,
        ):
            await broker.publish_many(topic, events[:3])
            await broker.publish(topic, events[3])
            received = [(await receive(subscription)).payload for _ in events]
            durable = [(await next_message(consumer)).payload for _ in events]
        assert received == durable == events

    async def test_publish_batch_delivers_each_to_its_topic_in_order_live_and_durably(
        self, broker: ContractBroker
    ) -> None:
        topic_a, topic_b = new_topic(), new_topic()
        events = [valid_event() for _ in range(4)]
        messages = [(topic_a, events[0]), (topic_b, events[1]), (topic_a, events[2])]
        messages.append((topic_b, events[3]))
        async with (
            broker.consume("groups", consumer="c1", block_seconds=0.1) as consumer,
            broker.subscribe(topic_a) as sub_a,
            broker.subscribe(topic_b) as sub_b,
        ):
            await broker.publish_batch(messages)
            got_a = [(await receive(sub_a)).payload for _ in range(2)]
            got_b = [(await receive(sub_b)).payload for _ in range(2)]
            durable = [(await next_message(consumer)).payload for _ in events]
        assert (got_a, got_b) == ([events[0], events[2]], [events[1], events[3]])
        assert sorted(durable, key=events.index) == events

    async def test_get_returns_none_when_nothing_arrives(self, broker: ContractBroker) -> None:
        async with broker.subscribe(new_topic()) as subscription:
            assert await subscription.get(timeout=0.05) is None

    async def test_two_subscribers_of_one_topic_both_receive(self, broker: ContractBroker) -> None:
        topic = new_topic()
        async with broker.subscribe(topic) as first, broker.subscribe(topic) as second:
            assert broker.fanout.topic_count == 1
            await broker.publish(topic, "both")
            assert await receive(first) == Delivery(payload="both")
            assert await receive(second) == Delivery(payload="both")

    async def test_topics_are_isolated(self, broker: ContractBroker) -> None:
        topic_a, topic_b = new_topic(), new_topic()
        async with broker.subscribe(topic_a) as sub_a, broker.subscribe(topic_b) as sub_b:
            await broker.publish(topic_a, "for a")
            await broker.publish(topic_b, "for b")
            assert await drain(sub_a) == [Delivery(payload="for a")]
            assert await drain(sub_b) == [Delivery(payload="for b")]

    async def test_leaving_unsubscribes(self, broker: ContractBroker) -> None:
        topic = new_topic()
        async with broker.subscribe(topic) as staying:
            async with broker.subscribe(topic) as leaving:
                pass
            # One subscriber left: the topic stays for the other.
            assert broker.fanout.subscriber_count == 1
            with pytest.raises(BrokerNotConnectedError):
                await leaving.get(timeout=0.05)
            await broker.publish(topic, "still here")
            assert await receive(staying) == Delivery(payload="still here")
        assert topic not in broker.fanout
        assert broker.fanout.subscriber_count == 0

        await broker.publish(topic, "to nobody")  # no error, and nobody holds it

        async with broker.subscribe(topic) as later:
            assert await later.get(timeout=0.1) is None
            await broker.publish(topic, "live")
            assert await receive(later) == Delivery(payload="live")

    async def test_slow_subscriber_is_bounded_and_told_to_resync_once(
        self, broker: ContractBroker
    ) -> None:
        topic, marker_topic = shard_topics()
        async with (
            broker.subscribe(topic, queue_size=2) as slow,
            broker.subscribe(marker_topic) as marker,
        ):
            dropped, resyncs = broker.fanout.dropped, broker.fanout.resyncs
            for n in range(10):
                await broker.publish(topic, f"m{n}")
            await wait_until_routed(broker, marker)
            assert broker.fanout.buffered <= 2 + 1  # its messages plus the one notice

            got = await drain(slow)
            payloads = [d.payload for d in got if not d.resync]
            assert len(payloads) <= 2
            assert payloads == [f"m{n}" for n in range(len(payloads))]
            assert got[len(payloads) :] == [RESYNC]
            assert broker.fanout.dropped - dropped == 10 - len(payloads)
            assert broker.fanout.resyncs - resyncs == 1

            # A flood does not make the broker hold more, and leaves one notice only.
            for n in range(300):
                await broker.publish(topic, f"flood{n}")
            await wait_until_routed(broker, marker)
            assert broker.fanout.buffered <= 2 + 1
            assert [d for d in await drain(slow) if d.resync] == [RESYNC]

            # Once the consumer caught up, live delivery resumes.
            await broker.publish(topic, "after")
            assert await receive(slow) == Delivery(payload="after")

    async def test_close_ends_open_subscriptions(self, broker: ContractBroker) -> None:
        topic = new_topic()
        received: list[Delivery] = []
        async with broker.subscribe(topic) as iterated, broker.subscribe(topic) as awaited:

            async def consume() -> None:
                async for delivery in iterated:
                    received.append(delivery)

            consumer = asyncio.create_task(consume())
            blocked_get = asyncio.create_task(awaited.get())
            await broker.publish(topic, "before close")
            assert await asyncio.wait_for(blocked_get, 5) == Delivery(payload="before close")
            blocked_get = asyncio.create_task(awaited.get())
            await asyncio.sleep(0.05)

            await broker.close()

            await asyncio.wait_for(consumer, 5)  # the iteration ended by itself
            with pytest.raises(BrokerNotConnectedError):
                await asyncio.wait_for(blocked_get, 5)
            with pytest.raises(BrokerNotConnectedError):
                await iterated.get(timeout=1)
        assert received == [Delivery(payload="before close")]
        assert broker.status() is BrokerStatus.CLOSED
        assert await broker.ping() is False
        with pytest.raises(BrokerNotConnectedError):
            await broker.publish(topic, "after close")
        with pytest.raises(BrokerNotConnectedError):
            async with broker.subscribe(topic):
                pass
        await broker.close()  # idempotent

    # -- durable consumption -------------------------------------------------------------

    async def test_every_group_gets_every_event_once_in_order(self, broker: ContractBroker) -> None:
        async with (
            broker.consume("billing", consumer="b1", block_seconds=0.1) as billing,
            broker.consume("audit", consumer="a1", block_seconds=0.1) as audit,
        ):
            topic = new_topic()  # order is per topic (see the module docstring)
            events = [valid_event() for _ in range(5)]
            for event in events:
                await broker.publish(topic, event)
            for consumer in (billing, audit):
                got = [await next_message(consumer) for _ in events]
                assert [m.payload for m in got] == events
                assert all(m.deliveries == 1 for m in got)
                for message in got:
                    await consumer.ack(message)
            # A repeat of any of the five would be read before an event published after them.
            marker = valid_event()
            await broker.publish(topic, marker)
            for consumer in (billing, audit):
                assert (await next_message(consumer)).payload == marker

    async def test_a_group_sees_only_what_was_published_after_it_was_created(
        self, broker: ContractBroker
    ) -> None:
        topic = new_topic()
        before = valid_event()
        await broker.publish(topic, before)
        async with broker.consume("late", consumer="c", block_seconds=0.1) as late:
            after = valid_event()
            await broker.publish(topic, after)
            assert (await next_message(late)).payload == after
        async with broker.consume(
            "replay", consumer="c", block_seconds=0.1, from_start=True
        ) as replay:
            assert [(await next_message(replay)).payload for _ in range(2)] == [before, after]

    async def test_consumers_of_one_group_share_the_work(self, broker: ContractBroker) -> None:
        # A read claims at most `batch_size` entries for the consumer that reads; taking
        # turns, each consumer's read must be served from what the other has not claimed.
        # A broker that handed one consumer more than its batch (or every entry) leaves the
        # other's turn empty, and `next_message` fails it: no timing decides the outcome.
        async with (
            broker.consume("g", consumer="one", block_seconds=0.05, batch_size=2) as one,
            broker.consume("g", consumer="two", block_seconds=0.05, batch_size=2) as two,
        ):
            events = [valid_event() for _ in range(12)]
            for event in events:
                await broker.publish(new_topic(), event)
            received: dict[str, list[str]] = {"one": [], "two": []}
            for turn in range(len(events)):
                consumer = (one, two)[turn % 2]
                message = await next_message(consumer)
                received[consumer.consumer].append(message.payload)
                await consumer.ack(message)
        assert sorted(received["one"] + received["two"]) == sorted(events)
        assert not set(received["one"]) & set(received["two"])
        assert (len(received["one"]), len(received["two"])) == (6, 6)

    async def test_a_dead_consumers_pending_message_is_claimed_by_the_living(
        self, broker: ContractBroker
    ) -> None:
        event = valid_event()
        options: ConsumeOptions = {"block_seconds": 0.05, "claim_idle_seconds": 0.3}
        async with broker.consume("g", consumer="doomed", **options) as doomed:
            await broker.publish(new_topic(), event)
            taken = await next_message(doomed)
            assert taken.payload == event
        # `doomed` left without acknowledging: its message stays pending in the group.
        async with broker.consume("g", consumer="survivor", **options) as survivor:
            claimed = await next_message(survivor, within=5)
            assert (claimed.payload, claimed.message_id) == (event, taken.message_id)
            assert claimed.deliveries == 2
            await survivor.ack(claimed)
            assert await nothing_arrives(survivor, quiet=0.8)
        assert broker.stats().redelivered >= 1

    async def test_a_restarted_consumer_first_gets_its_own_pending(
        self, broker: ContractBroker
    ) -> None:
        event = valid_event()
        async with broker.consume("g", consumer="same", block_seconds=0.05) as first:
            await broker.publish(new_topic(), event)
            assert (await next_message(first)).payload == event
        async with broker.consume("g", consumer="same", block_seconds=0.05) as again:
            message = await next_message(again)
            assert message.payload == event
            assert message.deliveries == 2

    async def test_invalid_messages_are_dead_lettered_and_consumption_goes_on(
        self, broker: ContractBroker
    ) -> None:
        unknown = orjson.loads(valid_event())
        unknown["type"] = "task.exploded.v1"
        missing = orjson.loads(valid_event())
        del missing["subject"]
        mistyped = orjson.loads(valid_event("task.step.progress.v1"))
        mistyped["data"]["percent"] = "fifty"
        oversized = orjson.loads(valid_event())
        oversized["data"]["input"] = {"blob": "x" * 70_000}
        bad = {
            "malformed": "{not json",
            "unknown_type": orjson.dumps(unknown).decode(),
            "malformed ": orjson.dumps(missing).decode(),  # a missing envelope attribute
            "invalid_data": orjson.dumps(mistyped).decode(),
            "oversized": orjson.dumps(oversized).decode(),
        }
        good = valid_event()
        invalid_before = broker.stats().invalid
        topic = new_topic()  # one topic: its messages are read in order
        async with broker.consume("g", consumer="c", block_seconds=0.05) as consumer:
            for payload in bad.values():
                await broker.publish(topic, payload)
            await broker.publish(topic, good)
            assert (await next_message(consumer)).payload == good
            # None of the invalid ones comes later: the next read is an event published after.
            marker = valid_event()
            await broker.publish(topic, marker)
            assert (await next_message(consumer)).payload == marker
        letters = await broker.dead_letters()
        assert [(d.reason.value, d.payload) for d in letters] == [
            (reason.strip(), payload) for reason, payload in bad.items()
        ]
        assert all(d.group == "g" and d.consumer == "c" and d.error for d in letters)
        assert broker.stats().invalid - invalid_before == len(bad)

    async def test_a_message_that_keeps_failing_is_dead_lettered(
        self, broker: ContractBroker
    ) -> None:
        event = valid_event()
        options: ConsumeOptions = {
            "block_seconds": 0.05,
            "claim_idle_seconds": 0.2,
            "max_deliveries": 2,
        }
        async with broker.consume("g", consumer="c", **options) as consumer:
            await broker.publish(new_topic(), event)
            first = await next_message(consumer)  # "fails": never acknowledged
            second = await next_message(consumer, within=5)
            assert (first.deliveries, second.deliveries) == (1, 2)
            assert second.message_id == first.message_id
            assert await nothing_arrives(consumer, quiet=0.8)
        (letter,) = await broker.dead_letters()
        assert letter.reason is DeadLetterReason.MAX_DELIVERIES
        assert (letter.payload, letter.message_id) == (event, first.message_id)

    async def test_a_rejected_message_is_dead_lettered_at_once(
        self, broker: ContractBroker
    ) -> None:
        event = valid_event()
        options: ConsumeOptions = {"block_seconds": 0.05, "claim_idle_seconds": 0.2}
        async with broker.consume("g", consumer="c", **options) as consumer:
            await broker.publish(new_topic(), event)
            message = await next_message(consumer)
            await consumer.dead_letter(message, "the endpoint said 410 Gone")
            assert await nothing_arrives(consumer, quiet=0.6)
        (letter,) = await broker.dead_letters()
        assert (letter.reason, letter.error) == (
            DeadLetterReason.REJECTED,
            "the endpoint said 410 Gone",
        )

    async def test_consuming_ends_when_the_broker_closes(self, broker: ContractBroker) -> None:
        async with broker.consume("g", consumer="c", block_seconds=0.05) as consumer:
            waiting = asyncio.ensure_future(anext(aiter(consumer)))
            await asyncio.sleep(0.1)
            await broker.close()
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(waiting, 5)


def valid_event(event_type: str = "task.created.v1") -> str:
    """A valid serialized event with a fresh id, as the store publishes it."""
    envelope = example_envelope(event_type)
    envelope["id"] = str(uuid.uuid4())
    return orjson.dumps(envelope).decode()


async def next_message(consumer: DurableConsumer, within: float = 5.0) -> DurableMessage:
    try:
        return await asyncio.wait_for(anext(aiter(consumer)), within)
    except TimeoutError:
        raise AssertionError(f"no message for {consumer.consumer} within {within} s") from None


async def nothing_arrives(consumer: DurableConsumer, quiet: float) -> bool:
    """True when no message comes within `quiet` s; ends `consumer` either way.

    Only for what a claim would bring back: claims are due by time (an entry idle for
    `claim_idle_seconds`, looked for every half of that), so only waiting longer than
    that shows none comes; `quiet` is at least twice `claim_idle_seconds`. Anything
    else is shown absent by publishing a marker and reading it next.

    The consumer is stopped with `close()`, as the worker stops it, rather than by
    cancelling its read in flight: cancelling a blocked XREADGROUP inside redis-py
    sometimes never completed, which hung the test.
    """
    waiting = asyncio.ensure_future(anext(aiter(consumer)))
    done, _ = await asyncio.wait({waiting}, timeout=quiet)
    if waiting not in done:
        consumer.close()
    try:
        message = await asyncio.wait_for(waiting, 10)
    except StopAsyncIteration:
        return True
    raise AssertionError(f"unexpected message {message}")
