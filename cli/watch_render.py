"""Turn a task's events into what the user sees: bars, plain lines, or NDJSON.

Kept apart from `cli/watch.py`, which only follows the stream: following is about
connections and resuming, rendering about a terminal's width and redraws, and
either changes without the other. A live bar per step on a terminal, one plain line
per event when stdout is a file or a pipe, the envelopes as they are with `--json`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import orjson

from schemas.registry import is_terminal


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
    waiting_for: str | None = None  # the input the task waits for (`tasks input`)
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
        elif event_type in {"task.queued.v1", "task.admitted.v1"}:
            self.status = "queued" if event_type == "task.queued.v1" else "running"
        elif event_type == "task.deferred.v1" and self.status == "pending":
            self.status = "queued"  # before `task.created.v1`: its start is booked
        elif event_type in {"task.paused.v1", "task.resumed.v1"}:
            self.status = "paused" if event_type == "task.paused.v1" else "running"
        elif event_type.startswith("task.input."):
            self.status = "waiting" if event_type == "task.input.requested.v1" else "running"
            self.waiting_for = data.get("name") if self.status == "waiting" else None
        elif is_terminal(event_type):
            self.status = event_type.split(".")[1]

    @property
    def percent(self) -> float:
        if not self.total_steps:
            return 100.0 if self.status == "completed" else 0.0
        done = sum(step.percent for step in self.steps.values())
        return done / self.total_steps


# How much of an output chunk or a metadata patch a plain line shows.
_CHUNK_SHOWN = 60


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
    if "stream" in data:  # task.output.v1: the chunk itself, cut short
        if data.get("text") is not None:
            parts.append(f"{data['stream']}: {data['text'][:_CHUNK_SHOWN]!r}")
        else:
            items = orjson.dumps(data.get("items")).decode()
            parts.append(f"{data['stream']}: {items[:_CHUNK_SHOWN]}")
    if "patch" in data:  # task.metadata.updated.v1
        parts.append(orjson.dumps(data["patch"]).decode()[:_CHUNK_SHOWN])
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
        waiting = f" for input {progress.waiting_for}" if progress.waiting_for else ""
        lines = [
            f"task {progress.task_id} {progress.task_type} · {progress.status}{waiting}"
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
