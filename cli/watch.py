"""Follow one task's SSE stream to its end, resuming after any dropped connection.

`follow(...)` yields each event once, in order: it keeps the last `sequence`
it yielded and, when the connection drops (API restart, network loss, idle
timeout), reconnects with `Last-Event-ID` after the server's `retry:` delay,
so the server resumes exactly after it. It stops after the terminal event, or
when the server answers 204 (the task ended before anything new was left to
send). What the events look like on screen is `cli/watch_render.py`'s job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from cli.sse import Frame, iter_frames
from schemas.registry import is_terminal

log = logging.getLogger(__name__)

# Longer than the server's heartbeat (15 s by default): silence this long means a dead link.
STREAM_READ_TIMEOUT_SECONDS = 60.0
DEFAULT_RETRY_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 5.0


class StreamGaveUpError(Exception):
    """No connection could be made for the whole `give_up_after` window."""


class StreamRefusedError(Exception):
    """The API refused the stream for good (4xx other than a retryable one)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass
class StreamEnd:
    """How following ended: the terminal event seen, or a 204 without one."""

    last_sequence: int = 0
    terminal_type: str | None = None
    no_content: bool = False


class _Unavailable(Exception):
    """The API answered, but cannot serve the stream now (5xx, 429): try again."""

    def __init__(self, status: int, delay: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.delay = delay


def follow(
    client: httpx.Client,
    task_id: str,
    *,
    after: int = 0,
    end: StreamEnd | None = None,
    give_up_after: float = 120.0,
    on_connection: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every event of the task after `after`, each once, across reconnections;
    `on_connection` hears "live" and "reconnecting" as the connection comes and goes."""
    tell = on_connection or (lambda state: None)
    end = end if end is not None else StreamEnd()
    end.last_sequence = after
    retry = DEFAULT_RETRY_SECONDS
    failures = 0
    down_since: float | None = None
    while True:
        try:
            connected = False
            for frame in _connect(client, task_id, end):
                if not connected:
                    connected = True
                    down_since, failures = None, 0
                    tell("live")
                if frame.retry is not None:
                    retry = frame.retry / 1000
                if not frame.is_event:
                    continue
                if frame.type == "error":
                    log.warning("the stream reported an error: %s", frame.data)
                    break
                event_id = frame.id or ""
                sequence = int(event_id) if event_id.isdigit() else None
                if sequence is None or sequence <= end.last_sequence:
                    continue  # a repeat after a reconnection: already yielded
                envelope: dict[str, Any] = orjson.loads(frame.data)
                end.last_sequence = sequence
                yield envelope
                # The server ends the stream after the task's current ending; a terminal
                # event with more after it ended a chapter that a reset reopened.
                end.terminal_type = frame.type if is_terminal(frame.type) else None
            else:
                if end.no_content or end.terminal_type is not None:
                    return  # the task has ended: nothing more will come
            tell("reconnecting")
            log.info(
                "stream ended; resuming after #%d",
                end.last_sequence,
                extra={"task_id": task_id, "sequence": end.last_sequence},
            )
            delay = retry
        except (httpx.TransportError, _Unavailable) as exc:
            failures += 1
            now = time.monotonic()
            down_since = down_since if down_since is not None else now
            if now - down_since > give_up_after:
                raise StreamGaveUpError(
                    f"no connection to the stream for {give_up_after:.0f} s: {exc}"
                ) from exc
            backoff = min(retry * 2 ** min(failures - 1, 4), MAX_BACKOFF_SECONDS)
            delay = exc.delay if isinstance(exc, _Unavailable) and exc.delay else backoff
            tell("reconnecting")
            log.warning(
                "connection lost (%s); resuming after #%d in %.1f s",
                str(exc) or type(exc).__name__,
                end.last_sequence,
                delay,
                extra={"task_id": task_id, "sequence": end.last_sequence},
            )
        time.sleep(delay)


def _connect(client: httpx.Client, task_id: str, end: StreamEnd) -> Iterator[Frame]:
    """One connection: its events and `retry` blocks (not the heartbeats, comments only);
    a 204 sets `end.no_content` and yields nothing."""
    headers = {"Accept": "text/event-stream"}
    if end.last_sequence:
        headers["Last-Event-ID"] = str(end.last_sequence)
    timeout = httpx.Timeout(10.0, read=STREAM_READ_TIMEOUT_SECONDS)
    with client.stream(
        "GET", f"/tasks/{task_id}/events", headers=headers, timeout=timeout
    ) as response:
        if response.status_code == 204:
            end.no_content = True
            return
        if response.status_code != 200:
            response.read()
            if response.status_code >= 500 or response.status_code == 429:
                raise _Unavailable(response.status_code, _retry_after(response))
            raise StreamRefusedError(response.status_code, _detail(response))
        for frame in iter_frames(response.iter_bytes()):
            if frame.is_event or frame.retry is not None:
                yield frame


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text or f"HTTP {response.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail or f"HTTP {response.status_code}")
