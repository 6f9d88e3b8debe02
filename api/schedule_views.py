"""What `/schedules` routes share: a request validated into a definition, a stored
row with Temporal's state made into a view, Temporal's refusals made into problems."""

from __future__ import annotations

import zoneinfo
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from api.models import CreateTaskRequest
from api.problems import ProblemError
from api.routes.tasks import validated_task_input
from api.schedule_models import CreateScheduleRequest, ScheduleRunView, ScheduleView
from api.services import Services
from schemas.admission import concurrency_policy
from settings import Settings
from store.schedules import ScheduleRow, ScheduleRows
from temporal.schedules import (
    ScheduleClient,
    ScheduleDefinition,
    ScheduleGoneError,
    ScheduleRefusedError,
)


def schedule_client(services: Services) -> ScheduleClient:
    return ScheduleClient(
        services.temporal.client,
        task_queue=services.settings.task_queue,
        rpc_timeout=timedelta(seconds=services.settings.temporal_rpc_timeout_seconds),
    )


def validated_request(services: Services, body: CreateScheduleRequest) -> dict[str, Any]:
    """The request with its input as a task's (validated like `POST /tasks`)."""
    if (body.cron is None) == (body.every is None):
        raise ProblemError(422, "give exactly one of `cron` and `every`")
    if body.timezone is not None:
        try:
            zoneinfo.ZoneInfo(body.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ProblemError(422, f"unknown time zone {body.timezone!r}") from None
    task = CreateTaskRequest(type=body.type, input=body.input)
    task_input = validated_task_input(task, services.settings.max_events_per_task)
    request = body.model_dump(mode="json") | {"input": task_input}
    # Flow-control fields at their defaults are left out, so a schedule stored before they
    # existed and its repeat with the same body have the same fingerprint (idempotent id).
    return {k: v for k, v in request.items() if k not in FLOW_DEFAULTS or v != FLOW_DEFAULTS[k]}


FLOW_DEFAULTS: dict[str, Any] = {"concurrency_key": None, "priority": 3}


def definition_of(
    tenant: str, request: dict[str, Any], temporal_id: str, settings: Settings
) -> ScheduleDefinition:
    def seconds(name: str) -> timedelta | None:
        value = request.get(name)
        return None if value is None else timedelta(seconds=value)

    # As `POST /tasks` decides it (api/admission.py), when the schedule is written.
    policy = concurrency_policy(request["type"], settings.concurrency_limit)
    key = request.get("concurrency_key") or tenant
    return ScheduleDefinition(
        tenant=tenant,
        schedule_id=request["id"],
        temporal_id=temporal_id,
        task_type=request["type"],
        input=request["input"],
        cron=request.get("cron"),
        every=seconds("every"),
        timezone=request.get("timezone"),
        overlap=request.get("overlap") or "skip",
        catchup_window=seconds("catchup_window"),
        jitter=seconds("jitter"),
        concurrency_key=key,  # the task's admission uses it only under a limit
        concurrency_limit=policy.limit if policy else None,
        concurrency_strategy=policy.strategy if policy else "queue",
        priority=request.get("priority") or 3,
        fairness_weight=settings.tenant_weight_map.get(tenant, 1.0),
    )


def summary_of(row: ScheduleRow) -> dict[str, Any]:
    request = {k: v for k, v in row.request.items() if k != "paused"}
    return request | {
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "temporal_schedule_id": row.temporal_id,
        "links": {"self": f"/schedules/{row.schedule_id}", "tasks": "/tasks"},
    }


async def stored_row(services: Services, tenant: str, schedule_id: str) -> ScheduleRow:
    row = await ScheduleRows(services.pool).get(tenant, schedule_id)
    if row is None:
        raise ProblemError(404, f"no schedule {schedule_id!r}")
    return row


async def view_of(services: Services, row: ScheduleRow) -> ScheduleView:
    try:
        state = await schedule_client(services).describe(row.temporal_id)
    except ScheduleGoneError:
        raise ProblemError(
            404, f"schedule {row.schedule_id!r} is gone from Temporal (deleted there)"
        ) from None
    return ScheduleView.model_validate(
        summary_of(row)
        | {
            "paused": state.paused,
            "note": state.note,
            "next_runs": state.next_runs,
            "recent_runs": [
                ScheduleRunView(
                    scheduled_at=run.scheduled_at, started_at=run.started_at, task_id=run.task_id
                )
                for run in state.recent_runs
            ],
            "running_task_ids": state.running_task_ids,
            "runs": state.runs,
            "skipped_overlap": state.skipped_overlap,
            "missed_catchup_window": state.missed_catchup_window,
        }
    )


async def steer(services: Services, row: ScheduleRow, call: Awaitable[None]) -> ScheduleView:
    """Await a call on the schedule, then show it; Temporal's refusals as problems."""
    try:
        await call
    except ScheduleGoneError:
        raise ProblemError(404, f"schedule {row.schedule_id!r} is gone from Temporal") from None
    except ScheduleRefusedError as exc:
        raise ProblemError(422, f"Temporal refused the schedule: {exc}") from None
    return await view_of(services, row)
