"""Reading an event stream with httpx in tests, parsed by the project's one parser (`cli.sse`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from cli.sse import Frame, aiter_frames

__all__ = ["SNAPSHOT", "Frame", "collect_events", "payload", "read_frames"]


def payload(frame: Frame) -> Any:
    """The frame's data as JSON: the envelope of a task event."""
    return orjson.loads(frame.data)


# The stream's first frame: the task's state, no `id` (api/snapshot.py). Tests about the
# events leave it out, as a client that listens only for event types never sees it.
SNAPSHOT = "snapshot"


async def read_frames(response: httpx.Response, *, snapshot: bool = False) -> AsyncIterator[Frame]:
    """Every block of the stream, as the wire carries them: pings (comments only) too;
    the snapshot frame only when asked for."""
    async for frame in aiter_frames(response.aiter_bytes()):
        if frame.event != SNAPSHOT or snapshot:
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
            if frame.is_event:
                frames.append(frame)
    return 200, frames
