"""The SSE path's shared pieces: one decoding per live message, frames, the shared delivery."""

from __future__ import annotations

from datetime import UTC, datetime

from api.live_events import LiveDecoder
from api.sse_frames import encode_frame
from broker.fanout import Fanout
from schemas import EventEnvelope
from schemas.examples import EXAMPLE_DATA

TASK = "00000000-0000-4000-8000-000000000001"


def envelope(sequence: int) -> str:
    event_type = "task.step.progress.v1"
    return (
        EventEnvelope(
            id=f"e{sequence}",
            type=event_type,
            subject=TASK,
            time=datetime.now(UTC),
            data=EXAMPLE_DATA[event_type],
        )
        .with_sequence(sequence)
        .to_json()
    )


def test_a_live_message_is_decoded_once_for_all_its_streams() -> None:
    decoder = LiveDecoder()
    payload = envelope(3)
    first = decoder.decode(payload)
    assert first is not None
    assert (first.subject, first.sequence, first.event_type) == (TASK, 3, "task.step.progress.v1")
    assert all(decoder.decode(payload) is first for _ in range(200))
    assert decoder.decoded == 1
    built: list[str] = []

    def build() -> bytes:
        built.append("x")
        return b"f"

    frames = {first.frame("latest", build) for _ in range(5)}
    assert frames == {b"f"}
    assert built == ["x"]


def test_the_cache_is_bounded_and_refuses_look_alikes() -> None:
    decoder = LiveDecoder(max_entries=2)
    payloads = [envelope(n) for n in (1, 2, 3)]
    for payload in payloads:
        decoder.decode(payload)
    decoder.decode(payloads[0])  # evicted: decoded again
    assert decoder.decoded == 4
    assert decoder.decode('{"specversion": "1.0"}') is None
    assert decoder.decode("not json") is None


def test_frames_split_data_lines_like_the_sse_spec_wants() -> None:
    assert encode_frame(7, "task.completed.v1", '{"a":1}') == (
        b'id: 7\nevent: task.completed.v1\ndata: {"a":1}\n\n'
    )
    assert encode_frame(1, "t", "a\nb\r\nc") == b"id: 1\nevent: t\ndata: a\ndata: b\ndata: c\n\n"


def test_every_subscriber_of_a_topic_gets_the_same_delivery() -> None:
    fanout = Fanout()
    subscriptions = [fanout.add("task.x")[0] for _ in range(3)]
    woken: list[int] = []
    subscriptions[0].waker = lambda: woken.append(1)
    fanout.deliver("task.x", "payload")
    deliveries = [s.get_nowait() for s in subscriptions]
    assert deliveries[0] is not None
    assert all(d is deliveries[0] for d in deliveries)
    assert woken == [1]
    assert all(s.get_nowait() is None for s in subscriptions)
