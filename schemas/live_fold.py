"""How a watcher builds a task's state from its events: the reference rules, in one
pure fold. `GET /tasks/{id}` and the stream's snapshot frame carry the same state as
the store keeps it; folding the task's events through the snapshot's `last_sequence`
gives the same answer (a test holds the two to it).

Output streams: a stream's content is its `task.output.v1` chunks in `sequence` order,
leaving out the chunks of a step attempt that failed (a `task.step.failed.v1` with the
chunk's `step` as `index` and its `attempt`). Workflow code's chunks (`step` null) are
always kept. Metadata: each patch's top-level keys replace, a `null` removes the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_ENDINGS = {
    "task.completed.v1": "completed",
    "task.failed.v1": "failed",
    "task.cancelled.v1": "cancelled",
    "task.terminated.v1": "terminated",
    "task.terminated.v2": "terminated",
}


@dataclass
class FoldedTask:
    status: str = "pending"
    progress: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    last_sequence: int = 0
    steps_completed: int = 0
    # (stream, step or 0, attempt or 0) -> the chunks' text (or items) in order
    chunks: list[tuple[str, int, int, Any]] = field(default_factory=list)
    failed_attempts: set[tuple[int, int]] = field(default_factory=set)

    def apply(self, event: dict[str, Any]) -> None:
        kind, data = event["type"], event.get("data") or {}
        self.last_sequence = max(self.last_sequence, int(event.get("sequence") or 0))
        if kind == "task.created.v1":
            self.status, self.progress = "running", 0.0
        elif kind in ("task.queued.v1", "task.admitted.v1"):
            self.status = "queued" if kind == "task.queued.v1" else "running"
        elif kind == "task.deferred.v1" and self.status == "pending":
            self.status = "queued"  # before `task.created.v1`: its start is booked
        elif kind in ("task.paused.v1", "task.resumed.v1"):
            self.status = "paused" if kind == "task.paused.v1" else "running"
        elif kind == "task.reset.v1":
            self.status, self.progress, self.steps_completed = "running", 0.0, 0
        elif kind in _ENDINGS:
            self.status = _ENDINGS[kind]
            if kind == "task.completed.v1":
                self.progress = 100.0
        elif kind == "task.progress.v1":
            self.progress = float(data["percent"])
        elif kind.startswith("task.step."):
            self._step(kind, data)
        elif kind == "task.metadata.updated.v1":
            merged = {**self.metadata, **data["patch"]}
            self.metadata = {k: v for k, v in merged.items() if v is not None}
        elif kind == "task.output.v1":
            part = data["text"] if data.get("text") is not None else list(data.get("items") or [])
            where = (data["stream"], data.get("step") or 0, data.get("attempt") or 0)
            self.chunks.append((*where, part))

    def _step(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "task.step.failed.v1":
            self.failed_attempts.add((int(data["index"]), int(data["attempt"])))
            return
        total = data.get("total_steps")
        if not isinstance(total, int) or total < 1:
            return
        fraction = {"task.step.started.v1": 0.0, "task.step.completed.v1": 1.0}.get(kind)
        if fraction is None:  # progress
            fraction = min(1.0, max(0.0, float(data.get("percent", 0)) / 100))
        done = 100.0 * (self.steps_completed + fraction) / total
        self.progress = max(self.progress, min(100.0, done))
        if kind == "task.step.completed.v1":
            self.steps_completed += 1

    def _kept(self) -> Iterable[tuple[str, Any]]:
        for stream, step, attempt, part in self.chunks:
            if (step, attempt) not in self.failed_attempts:
                yield stream, part

    def output_text(self, stream: str) -> str:
        """The stream's text: its kept chunks joined."""
        return "".join(
            part for name, part in self._kept() if name == stream and isinstance(part, str)
        )

    def output_lengths(self) -> dict[str, int]:
        """Characters (text) plus items (JSON) per stream, as the snapshot counts them."""
        lengths: dict[str, int] = {}
        for name, part in self._kept():
            lengths[name] = lengths.get(name, 0) + len(part)
        return lengths


def fold(events: Iterable[dict[str, Any]]) -> FoldedTask:
    state = FoldedTask()
    for event in events:
        state.apply(event)
    return state
