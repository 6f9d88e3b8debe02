"""A small, strict SSE reader for tests: frames as the wire carries them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data_lines: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)

    def json(self) -> Any:
        return orjson.loads(self.data)


async def read_frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Yield each event frame; comment-only blocks (pings) are yielded too, with no event."""
    frame = Frame()
    async for line in response.aiter_lines():
        if line == "":
            if frame.data_lines or frame.comments or frame.event or frame.id:
                yield frame
            frame = Frame()
            continue
        if line.startswith(":"):
            frame.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            frame.id = value
        elif name == "event":
            frame.event = value
        elif name == "data":
            frame.data_lines.append(value)
    if frame.data_lines:
        yield frame


async def collect_events(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    read_timeout: float = 60,
) -> tuple[int, list[Frame]]:
    """Read a stream to its end; returns (status, event frames without pings)."""
    frames: list[Frame] = []
    async with client.stream("GET", path, headers=headers, timeout=read_timeout) as response:
        if response.status_code != 200:
            return response.status_code, frames
        assert response.headers["content-type"].startswith("text/event-stream")
        async for frame in read_frames(response):
            if frame.data_lines:
                frames.append(frame)
    return 200, frames
