"""`ScheduleClient`: the one way the API makes and steers a tenant's Temporal Schedules.

Each schedule is a Temporal Schedule (visible and steerable in the Temporal UI and
CLI) whose action starts `ScheduledTaskWorkflow` (workflows/scheduled.py), which
starts the fire's ordinary task. Overlap policy, catch-up window, jitter, pause,
trigger and backfill are Temporal's; this module only maps names and values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import Priority
from temporalio.service import RPCError, RPCStatusCode

from schemas.schedules import (
    SCHEDULED_TASK_WORKFLOW,
    ScheduledTaskInput,
    action_workflow_id,
    scheduled_task_id,
)

OVERLAP_POLICIES = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}


class ScheduleGoneError(Exception):
    """Temporal has no such schedule (deleted outside the API, e.g. in its UI)."""


class ScheduleRefusedError(Exception):
    """Temporal refused the schedule as invalid (e.g. a cron expression it cannot read)."""


@dataclass(frozen=True, slots=True)
class ScheduleDefinition:
    """Everything a schedule is, as the API validated it."""

    tenant: str
    schedule_id: str
    temporal_id: str
    task_type: str
    input: dict[str, Any]
    cron: str | None
    every: timedelta | None
    timezone: str | None
    overlap: str
    catchup_window: timedelta | None
    jitter: timedelta | None
    # Each fire's task (issue 24): as `POST /tasks` would decide it (api/admission.py).
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    concurrency_strategy: Literal["queue", "cancel_newest", "cancel_in_progress"] = "queue"
    priority: int = 3
    fairness_weight: float = 1.0


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    """One fire: when it was due, when Temporal started it, and the task it starts."""

    scheduled_at: datetime
    started_at: datetime
    task_id: str | None


@dataclass(frozen=True, slots=True)
class ScheduleLiveState:
    """What Temporal says of a schedule now."""

    paused: bool
    note: str | None
    next_runs: list[datetime]
    recent_runs: list[ScheduleRun]
    running_task_ids: list[str]
    runs: int
    skipped_overlap: int
    missed_catchup_window: int


def _task_of(action: ScheduleActionExecutionStartWorkflow) -> str:
    return scheduled_task_id(action.workflow_id, action.first_execution_run_id)


def state_of(description: ScheduleDescription) -> ScheduleLiveState:
    info = description.info
    recent = []
    for result in info.recent_actions:
        action = result.action
        task_id = (
            _task_of(action) if isinstance(action, ScheduleActionExecutionStartWorkflow) else None
        )
        recent.append(ScheduleRun(result.scheduled_at, result.started_at, task_id))
    return ScheduleLiveState(
        paused=description.schedule.state.paused,
        note=description.schedule.state.note or None,
        next_runs=list(info.next_action_times),
        recent_runs=recent,
        running_task_ids=[
            _task_of(run)
            for run in info.running_actions
            if isinstance(run, ScheduleActionExecutionStartWorkflow)
        ],
        runs=info.num_actions,
        skipped_overlap=info.num_actions_skipped_overlap,
        missed_catchup_window=info.num_actions_missed_catchup_window,
    )


class ScheduleClient:
    def __init__(self, client: Client, *, task_queue: str, rpc_timeout: timedelta) -> None:
        self._client = client
        self._task_queue = task_queue
        self._rpc_timeout = rpc_timeout

    def _schedule(self, definition: ScheduleDefinition, *, paused: bool, note: str) -> Schedule:
        action = ScheduleActionStartWorkflow(
            SCHEDULED_TASK_WORKFLOW,
            ScheduledTaskInput(
                tenant=definition.tenant,
                schedule_id=definition.schedule_id,
                task_type=definition.task_type,
                input=definition.input,
                concurrency_key=definition.concurrency_key,
                concurrency_limit=definition.concurrency_limit,
                concurrency_strategy=definition.concurrency_strategy,
                priority=definition.priority,
                fairness_weight=definition.fairness_weight,
            ),
            id=action_workflow_id(definition.temporal_id),
            # The fire's own run is dispatched fairly too (its task's run: workflows/scheduled.py).
            priority=Priority(
                priority_key=definition.priority,
                fairness_key=definition.tenant,
                fairness_weight=definition.fairness_weight,
            ),
            task_queue=self._task_queue,
            static_summary=f"{definition.task_type} tasks of schedule {definition.schedule_id}"
            f" (tenant {definition.tenant})",
        )
        spec = ScheduleSpec(
            cron_expressions=[definition.cron] if definition.cron else [],
            intervals=[ScheduleIntervalSpec(every=definition.every)] if definition.every else [],
            jitter=definition.jitter,
            time_zone_name=definition.timezone,
        )
        policy = SchedulePolicy(overlap=OVERLAP_POLICIES[definition.overlap])
        if definition.catchup_window is not None:
            policy = SchedulePolicy(
                overlap=policy.overlap, catchup_window=definition.catchup_window
            )
        return Schedule(
            action=action, spec=spec, policy=policy, state=ScheduleState(paused=paused, note=note)
        )

    def _handle(self, temporal_id: str) -> ScheduleHandle:
        return self._client.get_schedule_handle(temporal_id)

    async def create(self, definition: ScheduleDefinition, *, paused: bool) -> None:
        """Create the schedule, or leave the one already there (a repeated creation)."""
        schedule = self._schedule(
            definition, paused=paused, note="created paused" if paused else ""
        )
        try:
            await self._client.create_schedule(
                definition.temporal_id,
                schedule,
                memo={"tenant": definition.tenant, "schedule_id": definition.schedule_id},
                rpc_timeout=self._rpc_timeout,
            )
        except ScheduleAlreadyRunningError:
            return
        except RPCError as exc:
            if exc.status == RPCStatusCode.INVALID_ARGUMENT:
                raise ScheduleRefusedError(exc.message) from None
            raise

    async def describe(self, temporal_id: str) -> ScheduleLiveState:
        try:
            description = await self._handle(temporal_id).describe(rpc_timeout=self._rpc_timeout)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise ScheduleGoneError(temporal_id) from None
            raise
        return state_of(description)

    async def update(self, definition: ScheduleDefinition, *, paused: bool | None) -> None:
        """Replace what the schedule does and when; its pause state stays unless given."""

        def updater(current: ScheduleUpdateInput) -> ScheduleUpdate:
            state = current.description.schedule.state
            keep = state.paused if paused is None else paused
            note = (state.note or "") if paused is None else ("paused" if paused else "")
            return ScheduleUpdate(schedule=self._schedule(definition, paused=keep, note=note))

        await self._call(
            definition.temporal_id, lambda h: h.update(updater, rpc_timeout=self._rpc_timeout)
        )

    async def pause(self, temporal_id: str, note: str | None) -> None:
        await self._call(temporal_id, lambda h: h.pause(note=note, rpc_timeout=self._rpc_timeout))

    async def resume(self, temporal_id: str, note: str | None) -> None:
        await self._call(temporal_id, lambda h: h.unpause(note=note, rpc_timeout=self._rpc_timeout))

    async def trigger(self, temporal_id: str, overlap: str | None) -> None:
        policy = OVERLAP_POLICIES[overlap] if overlap else None
        await self._call(
            temporal_id, lambda h: h.trigger(overlap=policy, rpc_timeout=self._rpc_timeout)
        )

    async def backfill(
        self, temporal_id: str, start_at: datetime, end_at: datetime, overlap: str | None
    ) -> None:
        backfill = ScheduleBackfill(
            start_at=start_at,
            end_at=end_at,
            overlap=OVERLAP_POLICIES[overlap] if overlap else None,
        )
        await self._call(temporal_id, lambda h: h.backfill(backfill, rpc_timeout=self._rpc_timeout))

    async def delete(self, temporal_id: str) -> None:
        """Delete the schedule; one already gone is no error. Tasks it started stay."""
        try:
            await self._handle(temporal_id).delete(rpc_timeout=self._rpc_timeout)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise

    async def _call(self, temporal_id: str, call: Any) -> None:
        try:
            await call(self._handle(temporal_id))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise ScheduleGoneError(temporal_id) from None
            if exc.status == RPCStatusCode.INVALID_ARGUMENT:
                raise ScheduleRefusedError(exc.message) from None
            raise
