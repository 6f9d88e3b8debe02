"""`MemoryBroker` against the broker contract, plus the fan-out's own edge cases."""

from __future__ import annotations

import asyncio

import pytest

from broker import BrokerNotConnectedError, BrokerUnavailableError, Delivery, MemoryBroker
from broker.fanout import Fanout
from tests.broker_contract import RESYNC, BrokerContract, BrokerFactory, drain, new_topic


class TestMemoryBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self) -> BrokerFactory:
        return MemoryBroker


async def test_published_records_topic_and_payload_in_order() -> None:
    broker = MemoryBroker()
    await broker.connect()
    await broker.publish("task.a", "1")
    await broker.publish("task.b", "2")
    assert broker.published == [("task.a", "1"), ("task.b", "2")]


async def test_unavailable_switch_rehearses_an_outage() -> None:
    broker = MemoryBroker()
    await broker.connect()
    broker.unavailable = True
    with pytest.raises(BrokerUnavailableError):
        await broker.publish("task.a", "lost")
    assert await broker.ping() is False
    assert broker.published == []


async def test_simulate_reconnect_sends_every_subscriber_one_resync() -> None:
    broker = MemoryBroker()
    await broker.connect()
    async with broker.subscribe("task.a") as sub_a, broker.subscribe("task.b") as sub_b:
        await broker.publish("task.a", "queued before")
        broker.simulate_reconnect()
        broker.simulate_reconnect()  # coalesces with the first
        assert await drain(sub_a) == [Delivery(payload="queued before"), RESYNC]
        assert await drain(sub_b) == [RESYNC]


async def test_messages_after_an_overflow_wait_for_the_resync_to_be_taken() -> None:
    fanout = Fanout()
    subscription, _ = fanout.add("t", queue_size=1)
    fanout.deliver("t", "kept")
    fanout.deliver("t", "dropped")  # overflow: resync queued
    assert await subscription.get() == Delivery(payload="kept")
    fanout.deliver("t", "also dropped")  # room again, but the notice is still pending
    assert await subscription.get() == RESYNC
    fanout.deliver("t", "live")
    assert await subscription.get() == Delivery(payload="live")
    assert (fanout.delivered, fanout.dropped, fanout.resyncs) == (2, 2, 1)


async def test_reference_counting_reports_first_and_last() -> None:
    fanout = Fanout()
    first, is_first = fanout.add("t")
    second, is_second_first = fanout.add("t")
    assert (is_first, is_second_first) == (True, False)
    assert fanout.remove(first) is False
    assert fanout.remove(second) is True
    assert fanout.remove(second) is False  # leaving twice is harmless
    assert fanout.topics() == []


async def test_close_wakes_a_blocked_get() -> None:
    fanout = Fanout()
    subscription, _ = fanout.add("t", queue_size=1)
    fanout.deliver("t", "a")
    fanout.deliver("t", "b")  # queue full with the resync notice too
    subscription.close()  # no room for a wake-up item: get() must still refuse
    with pytest.raises(BrokerNotConnectedError):
        await subscription.get()

    other, _ = fanout.add("u")
    waiting = asyncio.create_task(other.get())
    await asyncio.sleep(0)
    fanout.close_all()
    with pytest.raises(BrokerNotConnectedError):
        await asyncio.wait_for(waiting, 1)


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Fanout(default_queue_size=0)
    with pytest.raises(ValueError, match="at least 1"):
        Fanout().add("t", queue_size=0)


async def test_memory_broker_cannot_reconnect_after_close() -> None:
    broker = MemoryBroker()
    await broker.close()
    with pytest.raises(BrokerNotConnectedError):
        await broker.connect()
    with pytest.raises(BrokerNotConnectedError):
        await broker.publish(new_topic(), "{}")
