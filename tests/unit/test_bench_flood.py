"""The bench's flood client waits out a 429 and sends the same creation again."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
import time

import pytest

from bench import flood


async def _serve(refusals: int, retry_after: str) -> tuple[asyncio.Server, list[float]]:
    """A server that refuses its first `refusals` requests with 429, then creates."""
    arrivals: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                arrivals.append(time.monotonic())
                if len(arrivals) <= refusals:
                    status, body = "429 Too Many Requests", b'{"status":429}'
                    extra = f"Retry-After: {retry_after}\r\n"
                else:
                    status, extra = "201 Created", ""
                    body = json.dumps({"task_id": f"t{len(arrivals)}"}).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), arrivals


async def test_a_refused_creation_is_sent_again_after_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, arrivals = await _serve(refusals=2, retry_after="0.2")
    port = server.sockets[0].getsockname()[1]
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    async with server:
        await flood.flood(f"http://127.0.0.1:{port}", "k", count=3, in_flight=1, step_seconds=0)

    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["t3", "t4", "t5"]
    assert lines[3] == "refused 2"
    assert lines[4].startswith("cpu ")
    # Each refusal was waited out before the same creation came again.
    assert arrivals[1] - arrivals[0] >= 0.2
    assert arrivals[2] - arrivals[1] >= 0.2
    assert len(arrivals) == 5


async def test_any_other_refusal_ends_the_flood() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(RuntimeError, match="answered 500"):
            await flood.flood(f"http://127.0.0.1:{port}", "k", count=1, in_flight=1, step_seconds=0)
