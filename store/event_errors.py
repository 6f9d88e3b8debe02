"""Why `EventStore.append` refused an event (re-exported by `store.events`)."""

from __future__ import annotations


class DuplicateEventConflictError(RuntimeError):
    """An event id was reused for a different task: a bug in whoever made the id."""


class ChapterClosedError(RuntimeError):
    """The event belongs to a chapter that has ended (its terminal event is recorded) or
    to a run the task has left behind (a reset): recording it would put an event after
    a terminal one. Nothing was written."""


class TaskPrunedError(ChapterClosedError):
    """The task was pruned (retention): no event may bring back half of it. Nothing written."""


class AlreadyCreatedError(RuntimeError):
    """`task.created.v1` for a task that exists: a reset run starting over. Nothing written."""


class NewRunError(RuntimeError):
    """The event is the first of a run the task has not seen: a reset began a chapter.
    Nothing was written; record `task.reset.v1` with `begin_chapter`, then the event."""

    def __init__(self, task_id: str, from_run_id: str | None, to_run_id: str) -> None:
        super().__init__(f"task {task_id}: run {to_run_id} follows run {from_run_id}")
        self.task_id = task_id
        self.from_run_id = from_run_id
        self.to_run_id = to_run_id
