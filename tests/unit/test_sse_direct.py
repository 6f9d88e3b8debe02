"""Live events written by the fan-out itself while their stream waits (api/sse_client.py).

The stream is the real one (`TaskEventResponse` handed off, `TaskEventStream` with
its `SseClient`) over the in-memory broker, whose `publish` delivers without
yielding: a frame that is on the wire right after `publish` returns was written
by the fan-out, since the stream's task has not run in between.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable

from starlette.types import Message, Receive, Scope, Send

from api.sse_client import SseClient
from api.sse_frames import event_frame
from api.sse_handoff import HANDOFF, Handoff
from api.sse_response import TaskEventResponse
from api.stream_events import OutgoingEvent
from api.stream_gate import StreamCounters
from api.stream_ticker import StreamTicker
from api.streaming import TaskEventStream
from broker import Delivery, MemoryBroker, topic_for
from broker.fanout import Fanout
from tests.polling import until
from tests.unit.test_streaming import TASK, ListHistory

TOPIC = topic_for(TASK)


class Wire:
    """The server's side of one connection: the bodies sent, a `receive` that returns
    `http.disconnect` once the client leaves, and writes that can be held (a full socket
    buffer: uvicorn's `send` waits in its flow control)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.gone = asyncio.Event()

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if not self.writable.is_set():
            await self.writable.wait()
        if message["type"] == "http.response.body":
            self.bodies.append(message.get("body", b""))

    @property
    def sequences(self) -> list[int]:
        return [int(n) for n in re.findall(rb"^id: (\d+)$", b"".join(self.bodies), re.M)]


class Stream:
    """One stream of TASK, served as the app serves it (handed off, the server's `send`)."""

    def __init__(
        self,
        history: ListHistory,
        broker: MemoryBroker,
        *,
        idle_timeout: float = 30.0,
        send_timeout: float = 30.0,
    ) -> None:
        self.history = history
        self.broker = broker
        self.idle_timeout = idle_timeout
        self.counters = StreamCounters()
        self.wire = Wire()
        self.released = 0
        self.send_timeouts = 0
        self.ticker = StreamTicker(
            heartbeat_seconds=15,
            idle_timeout_seconds=idle_timeout,
            send_timeout_seconds=send_timeout,
        )
        self.task: asyncio.Task[None] | None = None

    def body(self, client: SseClient) -> AsyncGenerator[list[OutgoingEvent], None]:
        return TaskEventStream(
            TASK,
            after=0,
            history=True,
            store=self.history,
            broker=self.broker,
            queue_size=16,
            page_size=3,
            idle_timeout=self.idle_timeout,
            counters=self.counters,
            waiter=client,
        ).batches()

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> Callable[[], None] | None:
        return self.release

    def release(self) -> None:
        self.released += 1

    def on_send_timeout(self) -> None:
        self.send_timeouts += 1

    async def start(self) -> None:
        response = TaskEventResponse(
            self.body,
            opening=b"",
            version="latest",
            ticker=self.ticker,
            admit=self.admit,
            on_error=lambda exc: {"detail": str(exc)},
            on_send_timeout=self.on_send_timeout,
        )
        handoff = Handoff(self.wire.receive, self.wire.send)
        scope: Scope = {"type": "http", "method": "GET", "path": "/", HANDOFF: handoff}
        await response(scope, self.wire.receive, self.wire.send)
        serve = handoff.take()
        assert serve is not None
        self.task = asyncio.create_task(serve())  # type: ignore[arg-type]

    async def until_sent(self, *sequences: int) -> None:
        await until(lambda: self.wire.sequences == list(sequences), within=5, what=f"{sequences}")

    async def ended(self) -> None:
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


def frame(history: ListHistory, sequence: int) -> bytes:
    event = history.events[sequence - 1]
    return event_frame(event.sequence, event.event_type, event.envelope_json, "latest")


async def waiting_stream(**options: float) -> tuple[MemoryBroker, ListHistory, Stream]:
    """A stream of TASK that sent its history (`task.created.v1`) and waits for live events."""
    broker, history = MemoryBroker(), ListHistory()
    await broker.connect()
    history.add("task.created.v1")
    stream = Stream(history, broker, **options)
    await stream.start()
    await stream.until_sent(1)
    return broker, history, stream


async def test_live_events_are_written_by_the_fan_out_while_the_stream_waits() -> None:
    broker, history, stream = await waiting_stream()  # history sent: it waits for live events
    for sequence in (2, 3, 4):
        await broker.publish(TOPIC, history.add())
        # On the wire already: the fan-out wrote it, the stream's task did not run.
        assert stream.wire.bodies[-1] == frame(history, sequence)
    # A terminal event goes through the stream's task (it checks whether it ends the task).
    await broker.publish(TOPIC, history.add("task.completed.v1"))
    await stream.ended()
    assert stream.wire.sequences == [1, 2, 3, 4, 5]
    assert stream.wire.bodies[-2:] == [frame(history, 5), b""]
    assert (stream.released, stream.counters.heals, broker.fanout.subscriber_count) == (1, 0, 0)


async def test_what_is_not_the_next_event_still_goes_through_the_stream() -> None:
    broker, history, stream = await waiting_stream()
    await broker.publish(TOPIC, history.events[0].envelope_json)  # a repeat: dropped
    await until(lambda: stream.counters.dropped_duplicates == 1, within=5, what="the drop")
    history.add()  # never published: the next one shows a gap
    await broker.publish(TOPIC, history.add())
    assert stream.wire.sequences == [1]  # not written by the fan-out: the store heals it
    await stream.until_sent(1, 2, 3)
    assert stream.counters.gap_heals == 1
    await broker.publish(TOPIC, "not json")  # skipped and counted by the stream
    await until(lambda: stream.counters.invalid_messages == 1, within=5, what="the skip")
    await broker.publish(TOPIC, history.add())  # the stream waits again: direct once more
    assert stream.wire.sequences == [1, 2, 3, 4]
    await broker.publish(TOPIC, history.add("task.failed.v1"))
    await stream.ended()
    assert stream.wire.sequences == [1, 2, 3, 4, 5]


async def test_a_write_that_has_to_wait_is_finished_by_the_stream_before_what_follows() -> None:
    broker, history, stream = await waiting_stream()
    stream.wire.writable.clear()  # the client's socket buffer is full
    await broker.publish(TOPIC, history.add())  # its send waits: handed to the stream
    await broker.publish(TOPIC, history.add())  # queued behind it
    await broker.publish(TOPIC, history.add())
    await asyncio.sleep(0.05)  # let the stream run: nothing may pass the held write
    assert stream.wire.sequences == [1]
    stream.wire.writable.set()
    await stream.until_sent(1, 2, 3, 4)
    await broker.publish(TOPIC, history.add("task.completed.v1"))
    await stream.ended()
    assert stream.wire.sequences == [1, 2, 3, 4, 5]
    assert (stream.released, stream.send_timeouts) == (1, 0)


async def test_a_client_that_stops_reading_during_a_direct_write_is_dropped() -> None:
    broker, history, stream = await waiting_stream(send_timeout=0.2)
    stream.wire.writable.clear()  # and it never drains
    await broker.publish(TOPIC, history.add())
    await stream.ended()
    assert (stream.send_timeouts, stream.released, broker.fanout.subscriber_count) == (1, 1, 0)
    assert stream.wire.sequences == [1]


async def test_a_client_that_leaves_while_waiting_releases_everything() -> None:
    broker, history, stream = await waiting_stream()
    await broker.publish(TOPIC, history.add())
    stream.wire.gone.set()
    await stream.ended()
    assert stream.wire.sequences == [1, 2]
    assert (stream.released, broker.fanout.subscriber_count, stream.counters.open_streams) == (
        1,
        0,
        0,
    )


async def test_direct_writes_restart_the_idle_clock_without_reading_the_store() -> None:
    broker, history, stream = await waiting_stream(idle_timeout=2.0)
    # Time itself is what this shows: the event comes halfway through the idle timeout
    # (a second of margin for a busy machine), and the stream idles out a whole timeout
    # after it, not at its first deadline, without its early wakes counting as store polls.
    loop = asyncio.get_running_loop()
    await asyncio.sleep(1.0)
    published = loop.time()
    await broker.publish(TOPIC, history.add())
    assert stream.wire.sequences == [1, 2]
    await stream.ended()
    assert loop.time() - published >= 2.0 - 0.01  # a lower bound: a busy box only adds
    assert stream.counters.idle_timeouts == 1
    assert stream.counters.store_polls == 0  # the early end of its wait was not Redis away
    assert (stream.released, broker.fanout.subscriber_count) == (1, 0)


def test_a_taker_handles_a_message_only_when_nothing_is_queued_before_it() -> None:
    fanout = Fanout()
    subscription, _ = fanout.add("task.x", queue_size=4)
    taken: list[str | None] = []
    woken: list[int] = []
    subscription.waker = lambda: woken.append(1)

    class Taker:
        def take(self, delivery: Delivery) -> bool:
            taken.append(delivery.payload)
            return delivery.payload != "refused"

    subscription.taker = Taker()
    fanout.deliver("task.x", "a")  # taken: not queued, nobody woken
    assert (subscription.buffered, woken) == (0, [])
    fanout.deliver("task.x", "refused")  # queued, the consumer woken
    fanout.deliver("task.x", "b")  # something is queued before it: not offered to the taker
    assert taken == ["a", "refused"]
    assert subscription.buffered == 2
    assert woken == [1, 1]
    assert fanout.delivered == 3
