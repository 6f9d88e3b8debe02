"""The behaviour every `EventBroker` must show, written once and run against each one.

A test module subclasses `BrokerContract` as `Test…` and provides `make_broker`,
a fixture returning a factory of new, unconnected brokers. The base class builds
the connected `broker` fixture from it (closed after each test), so a broker
that needs a server gets a fresh one per test and no test sees another's state.

Waiting for "everything published so far was routed" uses a marker topic:
both brokers deliver one publisher's messages in order through one reader, so
once a later message on another topic arrived, every earlier one was routed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import pytest

from broker import (
    BrokerNotConnectedError,
    BrokerStatus,
    Delivery,
    EventBroker,
    Subscription,
)
from broker.fanout import Fanout

RESYNC = Delivery(payload=None, resync=True)


class ContractBroker(EventBroker, Protocol):
    """What the contract needs beyond `EventBroker`: the fan-out's counters."""

    @property
    def fanout(self) -> Fanout: ...


BrokerFactory = Callable[[], ContractBroker]


def new_topic() -> str:
    return f"task.{uuid.uuid4()}"


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
        topic = new_topic()
        async with (
            broker.subscribe(topic, queue_size=2) as slow,
            broker.subscribe(new_topic()) as marker,
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
