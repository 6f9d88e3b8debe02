"""`wait_for_input`: task code waits for a named input from outside (a person, a system).

    from workflows.waiting import InputTimeoutError, wait_for_input

    decision = await wait_for_input("approve", Approval, timeout=timedelta(hours=24))

Workflow code (a runner), deterministic. The wait records `task.input.requested.v1`
(the name, the JSON Schema of `model`, the deadline) and the task is `waiting`; a
client delivers the value with `POST /tasks/{id}/inputs/{name}` (a Temporal Update
whose validator checks it against `model`), which records `task.input.received.v1`
and returns the value here, validated. When `timeout` passes first, the wait records
`task.input.received.v1` with `timed_out` and raises `InputTimeoutError`: left alone,
it fails the task (`task.failed.v1` says which input was missing); caught, the code
decides what happens instead. A cancel while waiting cancels the task.

This module is passed through the workflow sandbox (worker/temporal_worker.py), so
the exception class a runner catches is the one the workflow raises.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from schemas.workflow import INPUT_TIMED_OUT

ModelT = TypeVar("ModelT", bound=BaseModel)


class InputTimeoutError(ApplicationError):
    """The input `name` was not given before the wait's deadline."""

    def __init__(self, name: str, timeout: timedelta) -> None:
        super().__init__(
            f"input {name!r} was not given within {_shown(timeout)}",
            type=INPUT_TIMED_OUT,
            non_retryable=True,
        )
        self.name = name


class InputWaiter(Protocol):
    """What the task workflow offers (`workflows.inputs.TaskInputs`)."""

    async def wait_for_input(
        self,
        name: str,
        model: type[ModelT],
        *,
        timeout: timedelta | None,  # noqa: ASYNC109  # a durable timer, not asyncio
        prompt: str | None,
    ) -> ModelT: ...


async def wait_for_input(
    name: str,
    model: type[ModelT],
    *,
    timeout: timedelta | float | None = None,  # noqa: ASYNC109  # a durable timer
    prompt: str | None = None,
) -> ModelT:
    """Wait until a client delivers the input `name` (a `model`), at most `timeout`
    (a timedelta or seconds; None: no limit). `prompt` is shown to the person asked."""
    if not name or len(name) > 100 or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"input names are 1-100 letters, digits, '-' or '_': {name!r}")
    if isinstance(timeout, int | float):
        timeout = timedelta(seconds=timeout)
    waiter: InputWaiter = workflow.instance()
    return await waiter.wait_for_input(name, model, timeout=timeout, prompt=prompt)


def _shown(timeout: timedelta) -> str:
    seconds = timeout.total_seconds()
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"
