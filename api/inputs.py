"""Delivering a waited-for input to a task: the part the REST route and the one-time
link share (api/routes/inputs.py).

The workflow decides (its `input` update's validator, workflows/inputs.py): not
waiting for that name → 409, a value its model refuses → 422 with `errors`. With an
`Idempotency-Key`, the delivery id is derived from the tenant, the task, the input
and the key, plus a hash of the value; a repeat finds its `task.input.received.v1` in
the store and answers 200 with the same body (another value under the same key: 422).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

from api.idempotency import IDEMPOTENCY_NAMESPACE, request_fingerprint
from api.lookup import find_task
from api.problems import DEPENDENCY_RETRY_AFTER_SECONDS, ProblemError
from api.services import Services
from schemas.tasks import TaskStatus
from schemas.workflow import INPUT_INVALID, DeliverInputRequest
from store.inputs import TaskInputs
from temporal.task_errors import InputRefusedError, TaskGoneError

log = logging.getLogger(__name__)


class InputDeliveryView(BaseModel):
    task_id: str
    name: str = Field(description="The input delivered.")
    sequence: int = Field(description="The `sequence` of its `task.input.received.v1`.")
    status: TaskStatus = Field(description="`running`: the task took the input and goes on.")
    events: str = Field(description="The task's events URL.")


def _view(task_id: str, name: str, sequence: int) -> InputDeliveryView:
    return InputDeliveryView(
        task_id=task_id,
        name=name,
        sequence=sequence,
        status=TaskStatus.RUNNING,
        events=f"/tasks/{task_id}/events",
    )


async def _earlier(
    services: Services, task_id: str, name: str, scope: str, fingerprint: str
) -> InputDeliveryView | None:
    """The delivery this key made before, or None; 422 when it carried another value."""
    for received in await TaskInputs(services.pool).received(task_id, name):
        delivery = received.delivery_id or ""
        if delivery.partition(".")[0] != scope:
            continue
        if delivery != f"{scope}.{fingerprint}":
            raise ProblemError(422, "this Idempotency-Key was already used with a different value")
        return _view(task_id, name, received.sequence)
    return None


async def deliver_input(
    services: Services,
    *,
    task_id: str,
    tenant: str,
    name: str,
    value: dict[str, Any],
    key: str | None = None,
    delivery_id: str | None = None,
    via: str,
) -> tuple[InputDeliveryView, bool]:
    """(the delivery, whether it is a repeat of an earlier one with the same key)."""
    view = await find_task(services, task_id, tenant)
    task_id = view.task_id
    scope = fingerprint = None
    if key is not None:
        scope = str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{tenant}\x00{task_id}\x00{name}\x00{key}"))
        fingerprint = request_fingerprint(value)[:32]
        earlier = await _earlier(services, task_id, name, scope, fingerprint)
        if earlier is not None:
            return earlier, True
        delivery_id = f"{scope}.{fingerprint}"
    if view.status.terminal:
        raise ProblemError(
            409, f"task {task_id} is {view.status.value}", task_status=view.status.value
        )
    delivery_id = delivery_id or str(uuid.uuid4())
    request = DeliverInputRequest(name=name, value=value, via=via, delivery_id=delivery_id)
    try:
        result = await services.temporal.deliver_input(task_id, request, update_id=delivery_id)
    except InputRefusedError as exc:
        if exc.kind == INPUT_INVALID:
            raise ProblemError(422, exc.message, errors=exc.errors) from None
        if scope is not None and fingerprint is not None:  # the same request, a moment ago?
            earlier = await _earlier(services, task_id, name, scope, fingerprint)
            if earlier is not None:
                return earlier, True
        raise ProblemError(409, f"task {task_id} is not waiting for input {name!r}") from None
    except TaskGoneError:
        if view.status is TaskStatus.QUEUED:  # parked in the store: no run to wait for it yet
            raise ProblemError(409, f"task {task_id} is not waiting for input {name!r}") from None
        raise ProblemError(409, f"task {task_id} has already ended") from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        # The update may still land; a retry with the same Idempotency-Key is the same one.
        raise ProblemError(
            503,
            f"task {task_id} did not answer in time (is a worker running?); retry with"
            " the same Idempotency-Key",
            headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
            component="Temporal",
        ) from None
    log.info("input delivered", extra={"task_id": task_id, "input": name, "via": via})
    return _view(task_id, name, result.sequence), False
