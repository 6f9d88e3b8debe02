"""`TaskClient`: the one way the API starts, controls and describes a task.

Every name it sends (workflow type, updates, memo keys, search attributes)
comes from `schemas/workflow.py`, and every call carries the same deadline, so a
Temporal that does not answer costs a request `rpc_timeout`, never more.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    Priority,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from schemas.deferral import DEFERRAL_NOTICE_WORKFLOW, DeferralNotice, deferral_workflow_id
from schemas.tasks import TaskStatus
from schemas.workflow import (
    CONTROL_REFUSED,
    INPUT_INVALID,
    INPUT_NOT_WAITING,
    MEMO_REQUEST_HASH,
    MEMO_REQUEST_NONCE,
    MEMO_TASK_TYPE,
    TASK_WORKFLOW,
    UPDATE_CONTROL,
    UPDATE_INPUT,
    ControlRequest,
    DeliverInputRequest,
    DeliverInputResult,
    TaskStatusView,
    TaskWorkflowInput,
    start_search_attributes,
    workflow_id_for,
)
from settings import Settings
from settings.deployment import DeploymentSettings, get_deployment_settings
from temporal.health import workflow_task_failing
from temporal.task_errors import ControlRefusedError, InputRefusedError, TaskGoneError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaskDescription:
    """What Temporal says of a task's current run, decoded once."""

    start_time: datetime | None
    task_type: str | None
    request_hash: str | None
    request_nonce: str | None
    # Why the run cannot act on a signal now (its workflow task keeps failing), or None.
    failing: str | None

    @classmethod
    async def of(cls, description: WorkflowExecutionDescription) -> TaskDescription:
        async def memo(key: str) -> str | None:
            value: str | None = await description.memo_value(key, None, type_hint=str)
            return value

        return cls(
            start_time=description.start_time,
            task_type=await memo(MEMO_TASK_TYPE),
            request_hash=await memo(MEMO_REQUEST_HASH),
            request_nonce=await memo(MEMO_REQUEST_NONCE),
            failing=workflow_task_failing(description),
        )


def _status_of(details: Sequence[Any]) -> TaskStatus | None:
    try:
        return TaskStatus(details[0]) if details else None
    except ValueError:  # a status this build does not know: say nothing rather than guess
        return None


def start_priority(request: TaskWorkflowInput, weights: Mapping[str, float]) -> Priority:
    """Temporal's Priority and Fairness for a task's run (and its activities, which
    inherit it): the task's priority, the tenant as fairness key with its weight, so
    matching dispatches tenants' work by weighted round robin (docs/flow-control.md)."""
    tenant = request.owner or "default"
    return Priority(
        priority_key=request.priority,
        fairness_key=tenant,
        fairness_weight=weights.get(tenant, 1.0),
    )


class TaskClient:
    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        rpc_timeout: timedelta,
        tenant_weights: Mapping[str, float] | None = None,
        versioning: DeploymentSettings | None = None,
    ) -> None:
        self.client = client
        self._task_queue = task_queue
        self._rpc_timeout = rpc_timeout
        self._weights = dict(tenant_weights or {})
        self._versioning = versioning or DeploymentSettings(versioning=False)

    @classmethod
    def from_settings(cls, client: Client, settings: Settings) -> TaskClient:
        """As the API and the worker's wake-ups start tasks: one queue, deadline, weights."""
        return cls(
            client,
            task_queue=settings.task_queue,
            rpc_timeout=timedelta(seconds=settings.temporal_rpc_timeout_seconds),
            tenant_weights=settings.tenant_weight_map,
            versioning=get_deployment_settings(),
        )

    def _handle(self, task_id: str) -> WorkflowHandle[object, object]:
        return self.client.get_workflow_handle(workflow_id_for(task_id))

    def _start_options(
        self, request: TaskWorkflowInput, request_hash: str, request_nonce: str
    ) -> dict[str, Any]:
        """How every run of a task is started (the API's start, a parked task's wake-up):
        never a second run under a task's id, whatever closed the first."""
        return {
            "id": workflow_id_for(request.task_id),
            "task_queue": self._task_queue,
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
            "memo": {
                MEMO_REQUEST_HASH: request_hash,
                MEMO_REQUEST_NONCE: request_nonce,
                MEMO_TASK_TYPE: request.task_type,
            },
            "search_attributes": start_search_attributes(request.task_type),
            "static_summary": f"{request.task_type} task {request.task_id}",
            "priority": start_priority(request, self._weights),
            "versioning_override": self._versioning.start_override(request.task_type),
            "rpc_timeout": self._rpc_timeout,
        }

    async def start(
        self,
        request: TaskWorkflowInput,
        *,
        request_hash: str,
        request_nonce: str,
        start_delay: timedelta | None = None,
        deferred_by: str | None = None,
        parked: bool = False,
    ) -> None:
        """Start the task's workflow, or leave the one already running (or closed) under
        its id: the memo says which request started it (`describe`). `start_delay`: its
        first workflow task waits that long (a start deferred by the rate limit, the
        rule `deferred_by`), and `task.deferred.v1` says so (`_notice_deferral`); a
        `parked` task's delay is its wait for a slot (`wake` ends it), noticed by nobody."""
        with contextlib.suppress(WorkflowAlreadyStartedError):  # closed under the same id
            await self.client.start_workflow(
                TASK_WORKFLOW,
                request,
                start_delay=start_delay,
                **self._start_options(request, request_hash, request_nonce),
            )
        if start_delay is not None and not parked:
            await self._notice_deferral(request, start_delay, deferred_by)

    async def wake(
        self, request: TaskWorkflowInput, *, request_hash: str, request_nonce: str, signal: str
    ) -> bool:
        """Signal-With-Start: a parked run's first workflow task is dispatched now (the
        rest of its start delay is skipped; a plain signal would wait for it), and a run
        never started (the API died after parking it) is started. False: the task's run
        is closed (an operator terminated it): it is never started again."""
        try:
            await self.client.start_workflow(
                TASK_WORKFLOW,
                request,
                start_signal=signal,
                **self._start_options(request, request_hash, request_nonce),
            )
        except WorkflowAlreadyStartedError:
            return False
        return True

    async def _notice_deferral(
        self, request: TaskWorkflowInput, delay: timedelta, rule: str | None
    ) -> None:
        """Start `DeferralNoticeWorkflow` (workflows/deferral.py), which records the
        task's `task.deferred.v1`; once per task (its id is the task's). The task is
        started already: a Temporal that refuses this costs the event, not the task."""
        notice = DeferralNotice(
            task_id=request.task_id,
            task_type=request.task_type,
            until=datetime.now(UTC) + delay,
            rule=rule,
        )
        try:
            await self.client.start_workflow(
                DEFERRAL_NOTICE_WORKFLOW,
                notice,
                id=deferral_workflow_id(request.task_id),
                task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"deferral of task {request.task_id}",
                priority=start_priority(request, self._weights),
                rpc_timeout=self._rpc_timeout,
            )
        except WorkflowAlreadyStartedError:
            pass  # noticed already (a repeat)
        except RPCError as exc:
            log.warning(
                "deferral event not started: the task starts as booked",
                extra={"task_id": request.task_id, "error": str(exc)},
            )

    async def describe(self, task_id: str) -> TaskDescription | None:
        """The current run, or None when Temporal does not know the task."""
        try:
            description = await self._handle(task_id).describe(rpc_timeout=self._rpc_timeout)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return await TaskDescription.of(description)

    async def control(
        self, task_id: str, request: ControlRequest, *, update_id: str | None = None
    ) -> TaskStatusView:
        """Pause, resume or cancel through the `control` update: applied by the workflow
        before this returns, so the next call sees it; `ControlRefusedError` when the
        workflow says the transition makes no sense now. A worker that does not take the
        update within the deadline raises `WorkflowUpdateRPCTimeoutOrCancelledError`.
        A repeat with the same `update_id` (a bulk operation's retried page) is the same
        update: Temporal answers it from the first, the workflow applies it once."""
        try:
            answer: TaskStatusView = await self._handle(task_id).execute_update(
                UPDATE_CONTROL,
                request,
                id=update_id,
                result_type=TaskStatusView,
                rpc_timeout=self._rpc_timeout,
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == CONTROL_REFUSED:
                raise ControlRefusedError(cause.message, _status_of(cause.details)) from None
            raise
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise TaskGoneError(task_id) from exc
            raise
        return answer

    async def deliver_input(
        self, task_id: str, request: DeliverInputRequest, *, update_id: str
    ) -> DeliverInputResult:
        """Deliver a waited-for input through the workflow's `input` update; returns once
        the task took it (its `task.input.received.v1` is recorded). A repeat with the
        same `update_id` is the same update. Raises `InputRefusedError` or TaskGoneError;
        `WorkflowUpdateRPCTimeoutOrCancelledError` when no answer came in time."""
        try:
            result: DeliverInputResult = await self._handle(task_id).execute_update(
                UPDATE_INPUT,
                request,
                id=update_id,
                result_type=DeliverInputResult,
                rpc_timeout=self._rpc_timeout,
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == INPUT_INVALID:
                errors = cause.details[0] if cause.details else []
                raise InputRefusedError(INPUT_INVALID, cause.message, list(errors)) from None
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise InputRefusedError(INPUT_NOT_WAITING, message or "not waiting") from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise TaskGoneError(task_id) from exc
            raise
        return result

    async def serving(self) -> bool:
        """Whether the frontend answers its health check (for `/readyz`)."""
        return await self.client.service_client.check_health()
