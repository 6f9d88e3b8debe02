"""The task workflow's side of `wait_for_input` (workflows/waiting.py): the waits in
progress, and the `input` update that ends one.

`TaskInputs` is a base class of `TaskWorkflow` (beside `TaskControl`): Temporal finds
the update handler on it. Deterministic workflow code. The update's validator refuses
a delivery before anything is written to history (not waiting for that name: type
`InputNotWaiting`; a value the input's model refuses: `InputInvalid`, with the errors
as details), so the API can answer 409 or 422 and the caller knows the task took it
when the update returns. Only task code that calls `wait_for_input` (new task types)
reaches any of this, so histories of earlier runs replay unchanged without a patch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas.envelope import format_time
    from schemas.size import cap_optional_text
    from schemas.tasks import TaskStatus
    from schemas.workflow import (
        INPUT_INVALID,
        INPUT_NOT_WAITING,
        UPDATE_INPUT,
        DeliverInputRequest,
        DeliverInputResult,
        RecordEventResult,
    )
    from workflows.waiting import InputTimeoutError

from workflows.control import TaskControl

ModelT = TypeVar("ModelT", bound=BaseModel)

# A delivered value's JSON, at most: its event (with the envelope) stays under 64 KiB.
MAX_INPUT_BYTES = 32 * 1024


@dataclass
class _Wait:
    model: type[BaseModel]
    claimed: bool = False  # a delivery took it (its event may still be recording)
    value: BaseModel | None = None


class TaskInputs(TaskControl):
    def __init__(self) -> None:
        super().__init__()
        self._waits: dict[str, _Wait] = {}

    # Provided by `TaskWorkflow`.
    async def _emit(
        self, event_type: str, data: dict[str, Any], *, event_id: str | None = None
    ) -> RecordEventResult:
        raise NotImplementedError

    async def _step_boundary(self) -> None:
        raise NotImplementedError

    async def wait_for_input(
        self,
        name: str,
        model: type[ModelT],
        *,
        timeout: timedelta | None,  # noqa: ASYNC109  # a durable timer, not asyncio
        prompt: str | None,
    ) -> ModelT:
        if name in self._waits:
            raise ApplicationError(
                f"task code waits for input {name!r} twice at once", non_retryable=True
            )
        await self._step_boundary()  # a cancel (or pause) asked for before now comes first
        wait = _Wait(model)
        self._waits[name] = wait
        try:
            deadline = workflow.now() + timeout if timeout is not None else None
            await self._emit(
                "task.input.requested.v1",
                {
                    "name": name,
                    "input_schema": model.model_json_schema(),
                    "deadline": format_time(deadline) if deadline else None,
                    "prompt": cap_optional_text(prompt),
                },
            )
            self._set_status(TaskStatus.WAITING)
            workflow.set_current_details(f"waiting for input {name}")
            self._log("task waits for input", input=name)
            try:
                await workflow.wait_condition(
                    lambda: wait.claimed or self._cancel_reason is not None, timeout=timeout
                )
            except TimeoutError:
                if not wait.claimed:
                    assert timeout is not None
                    await self._input_timed_out(name, timeout)
            if self._cancel_reason is not None and not wait.claimed:
                await self._step_boundary()  # raises: the task is cancelled
            await workflow.wait_condition(lambda: wait.value is not None)
        finally:
            self._waits.pop(name, None)
        value = wait.value
        assert isinstance(value, model)
        return value

    async def _input_timed_out(self, name: str, after: timedelta) -> None:
        self._waits.pop(name, None)  # from now on the validator refuses a delivery
        await self._emit("task.input.received.v1", {"name": name, "timed_out": True})
        self._set_status(TaskStatus.RUNNING)
        self._log("input timed out", level=logging.WARNING, input=name)
        raise InputTimeoutError(name, after)

    @workflow.update(name=UPDATE_INPUT)
    async def deliver_input(self, request: DeliverInputRequest) -> DeliverInputResult:
        wait = self._waits.get(request.name)
        if wait is None or wait.claimed:  # another delivery won since the validator ran
            raise ApplicationError(
                f"task is not waiting for input {request.name!r}", type=INPUT_NOT_WAITING
            )
        value = _validated(wait.model, request)  # before the claim: a refusal leaves it open
        wait.claimed = True
        recorded = await self._emit(
            "task.input.received.v1",
            {
                "name": request.name,
                "value": value.model_dump(mode="json"),
                "via": request.via,
                "delivery_id": request.delivery_id,
            },
        )
        self._set_status(TaskStatus.RUNNING)
        self._log("input received", input=request.name, via=request.via)
        wait.value = value
        return DeliverInputResult(name=request.name, sequence=recorded.sequence)

    @deliver_input.validator
    def _check_input(self, request: DeliverInputRequest) -> None:
        wait = self._waits.get(request.name)
        if wait is None or wait.claimed:
            raise ApplicationError(
                f"task is not waiting for input {request.name!r}", type=INPUT_NOT_WAITING
            )
        _validated(wait.model, request)


def _validated(model: type[BaseModel], request: DeliverInputRequest) -> BaseModel:
    """The value as `model` reads it, strict as JSON ("3" is no number, `1` no bool), and
    small enough for its `task.input.received.v1` (an event is at most 64 KiB)."""
    raw = json.dumps(request.value)
    if len(raw.encode()) > MAX_INPUT_BYTES:
        raise ApplicationError(
            f"the value of input {request.name!r} is over {MAX_INPUT_BYTES} bytes",
            [{"loc": [], "msg": f"at most {MAX_INPUT_BYTES} bytes of JSON"}],
            type=INPUT_INVALID,
        )
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise ApplicationError(
            f"invalid value for input {request.name!r}", errors, type=INPUT_INVALID
        ) from None
