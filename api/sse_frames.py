"""SSE frames of task events: a stored event's, and a live one's built once per version.

Both the stream's task (`api.sse_response`, history pages and queued live events)
and the fan-out's direct write (`api.sse_client.SseClient.take`, a live event
written while its stream waits) frame events here, so a live event's frame is
the same bytes whichever way it goes out.
"""

from __future__ import annotations

from api.event_versions import EventVersion, as_requested
from api.live_events import LiveEvent


def encode_frame(sequence: int, event_type: str, data: str) -> bytes:
    """One SSE event: `id`, `event`, and `data` (one line per line of `data`)."""
    if "\n" in data or "\r" in data:
        lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        data = "\ndata: ".join(lines)
    return f"id: {sequence}\nevent: {event_type}\ndata: {data}\n\n".encode()


def event_frame(sequence: int, event_type: str, envelope_json: str, version: EventVersion) -> bytes:
    shown_type, data = as_requested(envelope_json, event_type, version)
    return encode_frame(sequence, shown_type, data)


def live_frame(live: LiveEvent, version: EventVersion) -> bytes:
    """A live event's frame: built by the first stream of its task that asks for
    `version`, the same bytes for every other (no closure, no allocation on a hit)."""
    frame = live.frames.get(version)
    if frame is None:
        frame = live.frames[version] = event_frame(
            live.sequence, live.event_type, live.payload, version
        )
    return frame
