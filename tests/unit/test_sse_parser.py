"""`cli.sse`, the project's one `text/event-stream` parser, against the WHATWG rules.

Every stream is also fed one byte at a time: frames must not depend on where the
network happened to cut the chunks (a CRLF or a UTF-8 character split in two).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cli.sse import Frame, SSEParser, aiter_frames, iter_frames


def parse(stream: bytes) -> list[Frame]:
    whole = list(iter_frames([stream]))
    bytewise = list(iter_frames(stream[i : i + 1] for i in range(len(stream))))
    assert bytewise == whole
    return whole


def test_fields_comments_and_multiline_data() -> None:
    frames = parse(
        b"retry: 300\n\n"
        b": ping\n\n"
        b'id: 1\nevent: task.created.v1\ndata: {"a":\ndata: 1}\n data: no field\n\n'
    )
    assert frames == [
        Frame(retry=300),
        Frame(comments=("ping",)),
        Frame(
            event="task.created.v1",
            data_lines=('{"a":', "1}"),
            id="1",
            last_event_id="1",
        ),
    ]
    assert [f.is_event for f in frames] == [False, False, True]
    assert frames[2].data == '{"a":\n1}'
    assert frames[2].type == "task.created.v1"


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end(end: bytes) -> None:
    stream = end.join([b"id: 7", b"event: e", b"data: x", b"", b"data: y", b"", b""])
    assert [(f.id, f.event, f.data) for f in parse(stream)] == [("7", "e", "x"), (None, None, "y")]


def test_mixed_line_ends_and_a_crlf_split_across_chunks() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    # The LF completes the CRLF above: it is not a second (blank) line.
    assert parser.feed(b"\ndata: b\r") == []
    frames = parser.feed(b"\r\n")  # CR ends "data: b", CRLF is the blank line
    assert [f.data for f in frames] == ["a\nb"]


def test_a_leading_bom_is_dropped_once() -> None:
    bom = b"\xef\xbb\xbf"
    assert [f.data for f in parse(bom + b"data: x\n\n")] == ["x"]
    # Only at the very start: a second BOM is part of a (then unknown) field name.
    assert parse(bom + bom + b"data: x\n\n") == [Frame()]


def test_values_colons_and_spaces() -> None:
    frames = parse(b"data\n\ndata:\n\ndata:  two spaces\ndata:a:b\n\n")
    assert [f.data_lines for f in frames] == [("",), ("",), (" two spaces", "a:b")]
    assert all(f.is_event for f in frames)  # an empty data line still dispatches


def test_event_type_defaults_to_message() -> None:
    first, second = parse(b"data: x\n\nevent:\ndata: y\n\n")
    assert (first.event, first.type) == (None, "message")
    assert (second.event, second.type) == ("", "message")


def test_last_event_id_persists_and_ignores_nul() -> None:
    parser = SSEParser(last_event_id="4")
    stream = b"data: a\n\nid: 5\ndata: b\n\ndata: c\n\nid: 6\x00\ndata: d\n\nid\n\n"
    frames = list(iter_frames([stream], parser))
    assert [(f.id, f.last_event_id) for f in frames] == [
        (None, "4"),
        ("5", "5"),
        (None, "5"),
        (None, "5"),  # an id with NUL is ignored
        ("", ""),  # an empty id resets it
    ]
    assert parser.last_event_id == ""


def test_retry_only_when_all_ascii_digits() -> None:
    parser = SSEParser()
    frames = list(iter_frames([b"retry: 1500\n\nretry: 15s\n\nretry: \xc2\xb2\n\n"], parser))
    assert [f.retry for f in frames] == [1500, None, None]
    assert parser.retry == 1500


def test_unknown_fields_are_ignored_and_unfinished_blocks_dropped() -> None:
    assert parse(b"foo: bar\ndata: x\n\ndata: never dispatched") == [Frame(data_lines=("x",))]


def test_blank_lines_between_blocks_are_not_frames() -> None:
    assert parse(b"\n\n\r\n: c\n\n\n") == [Frame(comments=("c",))]


def test_a_utf8_character_split_across_chunks() -> None:
    text = "data: héllo ✓\n\n".encode()
    assert [f.data for f in parse(text)] == ["héllo ✓"]


async def test_async_streams() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"id: 1\nda", b"ta: x\n", b"\n"):
            await asyncio.sleep(0)
            yield chunk

    assert [(f.id, f.data) async for f in aiter_frames(chunks())] == [("1", "x")]
