"""What `TaskClient` raises when Temporal answers but the task does not do what was asked."""

from __future__ import annotations

from schemas.tasks import TaskStatus


class TaskGoneError(Exception):
    """The task's workflow is not there any more (it ended and its history is gone)."""


class InputRefusedError(Exception):
    """The task did not take the input: `kind` is `InputNotWaiting` or `InputInvalid`
    (then `errors` says where the value is wrong)."""

    def __init__(self, kind: str, message: str, errors: list[object] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.errors = errors or []


class ControlRefusedError(Exception):
    """The workflow refused a pause/resume/cancel: it makes no sense in its state."""

    def __init__(self, reason: str, status: TaskStatus | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
