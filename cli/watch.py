"""Follow one task's SSE stream to its end, resuming after any dropped connection.

`follow(...)` yields each event once, in order: it keeps the last `sequence`
it yielded and, when the connection drops (API restart, network loss, idle
timeout), reconnects with `Last-Event-ID` after the server's `retry:` delay,
so the server resumes exactly after it. It stops after the terminal event, or
when the server answers 204 (the task ended before anything new was left to
send). The renderers turn events into a live bar per step on a terminal, or
into one plain line per event when stdout is a file or a pipe.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

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


# -- rendering -----------------------------------------------------------------------------


@dataclass
class StepState:
    name: str
    percent: float = 0.0
    state: str = "waiting"
    attempt: int = 1


@dataclass
class TaskProgress:
    """What the events say so far: the task's status and each step's bar."""

    task_id: str
    task_type: str = "?"
    status: str = "pending"
    total_steps: int = 0
    steps: dict[int, StepState] = field(default_factory=dict)

    def apply(self, envelope: dict[str, Any]) -> None:
        data: dict[str, Any] = envelope.get("data") or {}
        event_type = envelope.get("type", "")
        if data.get("total_steps"):
            self.total_steps = max(self.total_steps, int(data["total_steps"]))
        if event_type == "task.created.v1":
            self.task_type = str(data.get("task_type", "?"))
            self.status = "running"
            task_input = data.get("input") or {}
            planned = task_input.get("steps", task_input.get("branches"))
            if isinstance(planned, int):
                self.total_steps = max(self.total_steps, planned)
        elif event_type.startswith("task.step."):
            step = self.steps.setdefault(int(data["index"]), StepState(str(data.get("name"))))
            self.total_steps = max(self.total_steps, int(data["index"]))
            if event_type == "task.step.started.v1":
                step.state, step.percent, step.attempt = "running", 0.0, int(data["attempt"])
            elif event_type == "task.step.progress.v1":
                step.percent = float(data["percent"])
            elif event_type == "task.step.completed.v1":
                step.state, step.percent = "completed", 100.0
            elif event_type == "task.step.failed.v1":
                step.state = "retrying" if data.get("will_retry") else "failed"
        elif event_type == "task.reset.v1":  # a new chapter: the steps start over
            self.status, self.steps = "running", {}
        elif event_type in {"task.paused.v1", "task.resumed.v1"}:
            self.status = "paused" if event_type == "task.paused.v1" else "running"
        elif is_terminal(event_type):
            self.status = event_type.split(".")[1]

    @property
    def percent(self) -> float:
        if not self.total_steps:
            return 100.0 if self.status == "completed" else 0.0
        done = sum(step.percent for step in self.steps.values())
        return done / self.total_steps


def describe(envelope: dict[str, Any]) -> str:
    """One plain line per event: `#7 task.step.progress.v1 step-2 40%`."""
    data: dict[str, Any] = envelope.get("data") or {}
    parts = [f"#{envelope.get('sequence')}", str(envelope.get("type"))]
    if "name" in data:
        parts.append(str(data["name"]))
    if "percent" in data:
        parts.append(f"{data['percent']:.0f}%")
    if isinstance(data.get("attempt"), int) and data["attempt"] > 1:
        parts.append(f"attempt {data['attempt']}")
    for key in ("error", "reason"):
        if data.get(key):
            parts.append(f"— {data[key]}")
    return " ".join(parts)


class Renderer(Protocol):
    def event(self, envelope: dict[str, Any], progress: TaskProgress) -> None: ...

    def connection(self, state: str) -> None: ...

    def finish(self, progress: TaskProgress) -> None: ...


class TextRenderer:
    """stdout is not a terminal: one line per event, nothing redrawn."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def event(self, envelope: dict[str, Any], progress: TaskProgress) -> None:
        self.out.write(describe(envelope) + "\n")
        self.out.flush()

    def connection(self, state: str) -> None:
        return None  # stderr's log lines say it

    def finish(self, progress: TaskProgress) -> None:
        self.out.write(f"task {progress.task_id} {progress.status}\n")
        self.out.flush()


class JsonRenderer:
    """`--json`: each event's envelope as one JSON line (NDJSON)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def event(self, envelope: dict[str, Any], progress: TaskProgress) -> None:
        self.out.write(orjson.dumps(envelope).decode() + "\n")
        self.out.flush()

    def connection(self, state: str) -> None:
        return None

    def finish(self, progress: TaskProgress) -> None:
        return None


class BarsRenderer:
    """A terminal: the task line and one bar per step, redrawn in place (ANSI).

    The connection's state shows on the task line rather than as log lines, which
    would scroll the bars and break the redraw (cli/tasks.py quiets them meanwhile)."""

    MIN_INTERVAL_SECONDS = 0.1

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.drawn = 0
        self.last_draw = 0.0
        self.link = ""
        self.progress: TaskProgress | None = None

    def connection(self, state: str) -> None:
        self.link = "" if state == "live" else f" · {state}…"
        if self.progress is not None:
            self.draw(self.progress)

    def event(self, envelope: dict[str, Any], progress: TaskProgress) -> None:
        now = time.monotonic()
        if now - self.last_draw >= self.MIN_INTERVAL_SECONDS or progress.status != "running":
            self.draw(progress)
            self.last_draw = now

    def finish(self, progress: TaskProgress) -> None:
        self.draw(progress)

    def draw(self, progress: TaskProgress) -> None:
        self.progress = progress
        width = shutil.get_terminal_size((80, 24)).columns
        names = [
            progress.steps.get(i, StepState(f"step {i}")).name
            for i in range(1, progress.total_steps + 1)
        ]
        name_width = min(max((len(n) for n in names), default=4), 20)
        bar_width = max(10, min(40, width - name_width - 24))
        lines = [
            f"task {progress.task_id} {progress.task_type} · {progress.status}"
            f" · {progress.percent:.0f}%{self.link}"
        ]
        for index, name in enumerate(names, start=1):
            step = progress.steps.get(index, StepState(name))
            filled = round(bar_width * step.percent / 100)
            bar = "#" * filled + "-" * (bar_width - filled)
            attempt = f" (attempt {step.attempt})" if step.attempt > 1 else ""
            lines.append(
                f"  {name[:name_width]:<{name_width}} [{bar}] {step.percent:3.0f}%"
                f"  {step.state}{attempt}"
            )
        # Back to the first line drawn last time, then overwrite every line.
        prefix = f"\x1b[{self.drawn}F" if self.drawn else ""
        self.out.write(prefix + "".join(f"\x1b[2K{line[:width]}\n" for line in lines))
        self.out.flush()
        self.drawn = len(lines)
