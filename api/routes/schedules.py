"""Schedules: a tenant's tasks on a cron or an interval, each one a Temporal Schedule
(temporal/schedules.py) whose every fire starts an ordinary task (docs/schedules.md).

Ownership and the request as written live in the store (`schedules`, migration 0015):
a tenant lists its schedules there, at once consistent, and another tenant's id names
no schedule (404). The running state (paused, next and recent runs) is Temporal's.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import ValidationError

from api.auth import TenantDep
from api.deps import ServicesDep
from api.idempotency import request_fingerprint
from api.problems import ProblemError
from api.schedule_models import (
    SCHEDULE_ID_PATTERN,
    BackfillRequest,
    CreateScheduleRequest,
    NoteRequest,
    SchedulePageView,
    ScheduleSummary,
    ScheduleView,
    TriggerRequest,
    UpdateScheduleRequest,
)
from api.schedule_views import (
    definition_of,
    schedule_client,
    steer,
    stored_row,
    summary_of,
    validated_request,
    view_of,
)
from schemas.schedules import temporal_schedule_id
from store.schedules import ScheduleRows
from temporal.schedules import ScheduleRefusedError

router = APIRouter(tags=["schedules"])

DEFAULT_PAGE = 50
# A backfill asks Temporal for every fire in its range: at most this many (`every` only;
# a cron's count is Temporal's to limit).
MAX_BACKFILL_RUNS = 1000
MAX_BACKFILL_SPAN = timedelta(days=366)
IdPath = Annotated[str, Path(pattern=SCHEDULE_ID_PATTERN)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such schedule in this tenant."}
}
BAD_BODY: dict[int | str, dict[str, Any]] = {400: {"description": "The body is not JSON."}}
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid: the body, the type, its input, cron or time zone."}
}


@router.post(
    "/schedules",
    status_code=201,
    response_model=ScheduleView,
    responses={
        200: {"model": ScheduleView, "description": "The schedule this `id` already names."},
        404: {"description": "The schedule was deleted (in Temporal) as it was made."},
        409: {"description": "This `id` names a schedule made with another request."},
        **BAD_BODY,
        **REFUSED,
    },
)
async def create_schedule(
    body: CreateScheduleRequest, response: Response, services: ServicesDep, tenant: TenantDep
) -> ScheduleView:
    """Create a schedule; each fire starts a task of `type` with `input`. With an `id`, a
    repeat of the same request returns the schedule (200)."""
    request = validated_request(services, body)
    if body.id is None:
        request["id"] = str(uuid.uuid4())
    temporal_id = temporal_schedule_id(tenant, request["id"])
    fingerprint = request_fingerprint(request)
    rows = ScheduleRows(services.pool)
    try:
        row, inserted = await rows.insert(tenant, request["id"], temporal_id, request, fingerprint)
    except LookupError:  # an existing one was deleted between our insert and our read
        raise ProblemError(409, f"schedule {request['id']!r} was just deleted: retry") from None
    if not inserted:
        if row.request_hash != fingerprint:
            raise ProblemError(409, f"schedule {row.schedule_id!r} exists with another request")
        response.status_code = 200
    try:  # also when the row existed: a creation interrupted before this line completes
        await schedule_client(services).create(
            definition_of(tenant, row.request, temporal_id, services.settings),
            paused=bool(row.request.get("paused")),
        )
    except ScheduleRefusedError as exc:
        if inserted:
            await rows.delete(tenant, row.schedule_id)
        raise ProblemError(422, f"Temporal refused the schedule: {exc}") from None
    except BaseException:
        if inserted:  # nothing half made: a retry starts over
            with contextlib.suppress(Exception):
                await rows.delete(tenant, row.schedule_id)
        raise
    response.headers["Location"] = f"/schedules/{row.schedule_id}"
    return await view_of(services, row)


@router.get("/schedules", response_model=SchedulePageView)
async def list_schedules(
    services: ServicesDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=500)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(pattern=SCHEDULE_ID_PATTERN)] = None,
) -> SchedulePageView:
    """The tenant's schedules by id; `next_cursor` fetches the next page."""
    rows = await ScheduleRows(services.pool).page(tenant, after=cursor, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return SchedulePageView(
        schedules=[ScheduleSummary.model_validate(summary_of(row)) for row in rows],
        next_cursor=rows[-1].schedule_id if more else None,
    )


@router.get("/schedules/{schedule_id}", response_model=ScheduleView, responses=NOT_FOUND)
async def get_schedule(
    schedule_id: IdPath, services: ServicesDep, tenant: TenantDep
) -> ScheduleView:
    """The schedule, paused or not, its next fires and its recent runs (with their tasks)."""
    return await view_of(services, await stored_row(services, tenant, schedule_id))


@router.patch(
    "/schedules/{schedule_id}",
    response_model=ScheduleView,
    responses={**NOT_FOUND, **BAD_BODY, **REFUSED},
)
async def update_schedule(
    schedule_id: IdPath, body: UpdateScheduleRequest, services: ServicesDep, tenant: TenantDep
) -> ScheduleView:
    """Change some fields (`null` clears an optional one; `cron` and `every` replace each
    other); the schedule keeps its id, its runs and, unless `paused` is given, its state."""
    row = await stored_row(services, tenant, schedule_id)
    change = body.model_dump(mode="json", exclude_unset=True)
    paused = change.pop("paused", None)
    if "cron" in change and change["cron"] is not None:
        change.setdefault("every", None)
    if "every" in change and change["every"] is not None:
        change.setdefault("cron", None)
    merged = {k: v for k, v in row.request.items() if k != "paused"} | {
        k: v for k, v in change.items() if not (k in {"type", "input", "overlap"} and v is None)
    }
    if merged.get("priority", 3) is None:  # `null`: back to the default
        del merged["priority"]
    try:
        updated = CreateScheduleRequest.model_validate(merged)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise ProblemError(422, "invalid schedule", errors=errors) from None
    request = validated_request(services, updated) | {"paused": row.request.get("paused")}
    definition = definition_of(tenant, request, row.temporal_id, services.settings)
    await steer(services, row, schedule_client(services).update(definition, paused=paused))
    await ScheduleRows(services.pool).update(tenant, schedule_id, request)
    return await view_of(services, await stored_row(services, tenant, schedule_id))


@router.delete("/schedules/{schedule_id}", status_code=204, responses=NOT_FOUND)
async def delete_schedule(
    schedule_id: IdPath, services: ServicesDep, tenant: TenantDep
) -> Response:
    """Delete the schedule (no more fires); tasks it started stay, running or not."""
    row = await stored_row(services, tenant, schedule_id)
    await schedule_client(services).delete(row.temporal_id)
    await ScheduleRows(services.pool).delete(tenant, schedule_id)
    return Response(status_code=204)


@router.post(
    "/schedules/{schedule_id}/pause",
    response_model=ScheduleView,
    responses={**NOT_FOUND, **BAD_BODY},
)
async def pause_schedule(
    schedule_id: IdPath,
    services: ServicesDep,
    tenant: TenantDep,
    body: Annotated[NoteRequest | None, Body()] = None,
) -> ScheduleView:
    """No fires until resumed (a paused schedule skips its fires; none are caught up)."""
    row = await stored_row(services, tenant, schedule_id)
    note = body.note if body else None
    return await steer(services, row, schedule_client(services).pause(row.temporal_id, note))


@router.post(
    "/schedules/{schedule_id}/resume",
    response_model=ScheduleView,
    responses={**NOT_FOUND, **BAD_BODY},
)
async def resume_schedule(
    schedule_id: IdPath,
    services: ServicesDep,
    tenant: TenantDep,
    body: Annotated[NoteRequest | None, Body()] = None,
) -> ScheduleView:
    """Fire again from the next due time on (fires missed while paused are not run)."""
    row = await stored_row(services, tenant, schedule_id)
    note = body.note if body else None
    return await steer(services, row, schedule_client(services).resume(row.temporal_id, note))


@router.post(
    "/schedules/{schedule_id}/trigger",
    status_code=202,
    response_model=ScheduleView,
    responses={**NOT_FOUND, **BAD_BODY},
)
async def trigger_schedule(
    schedule_id: IdPath,
    services: ServicesDep,
    tenant: TenantDep,
    body: Annotated[TriggerRequest | None, Body()] = None,
) -> ScheduleView:
    """Fire now (paused or not); its task appears in `recent_runs` once Temporal started it."""
    row = await stored_row(services, tenant, schedule_id)
    overlap = body.overlap if body else None
    return await steer(services, row, schedule_client(services).trigger(row.temporal_id, overlap))


@router.post(
    "/schedules/{schedule_id}/backfill",
    status_code=202,
    response_model=ScheduleView,
    responses={**NOT_FOUND, **BAD_BODY, **REFUSED},
)
async def backfill_schedule(
    schedule_id: IdPath, body: BackfillRequest, services: ServicesDep, tenant: TenantDep
) -> ScheduleView:
    """Run the fires the schedule would have made between `start_at` and `end_at`."""
    row = await stored_row(services, tenant, schedule_id)
    span = body.end_at - body.start_at
    if span <= timedelta(0) or span > MAX_BACKFILL_SPAN:
        raise ProblemError(422, "end_at must be after start_at, by at most 366 days")
    every = row.request.get("every")
    if every and span / timedelta(seconds=every) > MAX_BACKFILL_RUNS:
        raise ProblemError(422, f"a backfill runs at most {MAX_BACKFILL_RUNS} fires")
    call = schedule_client(services).backfill(
        row.temporal_id, body.start_at, body.end_at, body.overlap
    )
    return await steer(services, row, call)
