"""Create, read, list and steer tasks."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import ValidationError

from api.admission import park_if_full, parked_start, workflow_input
from api.auth import TenantDep
from api.budget import check_event_budget
from api.creation_turns import CreationTurnsDep
from api.debounce import create_debounced, debounce_of
from api.deps import ServicesDep
from api.event_versions import VersionQuery, as_requested
from api.idempotency import parse_idempotency_key, request_fingerprint, task_id_for_key
from api.limits import MAX_SEQUENCE, CreationLimiterDep, check_creation_rate, check_page_size
from api.lookup import find_task, parse_task_id, view_from_record
from api.models import (
    CreateTaskRequest,
    CreateTaskResponse,
    TaskLinks,
    TaskPageView,
)
from api.problems import ProblemError
from api.rate_limits import StartRatesDep, answer_headers
from api.snapshot import TaskSnapshot, build_snapshot
from schemas.tasks import TASK_INPUT_MODELS, TaskStatus
from schemas.workflow import workflow_id_for
from store import InvalidCursorError
from store.tenants import TaskOwners
from temporal.tasks import TaskDescription
from webhooks.api import subscribe_webhook

router = APIRouter(tags=["tasks"])

# Page sizes when the client gives none (never above the configured maximum).
DEFAULT_TASKS_PAGE = 50
DEFAULT_HISTORY_PAGE = 100
PAGE_SIZE_DOC = "Tasks per page: default 50, at most TASKPLANE_LIMIT_TASKS_PAGE_SIZE (500)."
HISTORY_SIZE_DOC = "Events per page: default 100, at most TASKPLANE_LIMIT_HISTORY_PAGE_SIZE (1000)."


def _links(task_id: str) -> TaskLinks:
    base = f"/tasks/{task_id}"
    return TaskLinks(self=base, events=f"{base}/events", history=f"{base}/history")


def validated_task_input(body: CreateTaskRequest, event_budget: int) -> dict[str, Any]:
    input_model = TASK_INPUT_MODELS.get(body.type)
    if input_model is None:
        raise ProblemError(
            422, f"unknown task type {body.type!r}", known_types=sorted(TASK_INPUT_MODELS)
        )
    try:
        # Strict, as JSON: `false` is no number and "3" no integer (the OpenAPI document
        # says so, and the fuzzer holds the API to it); JSON mode still reads dates.
        validated = input_model.model_validate_json(json.dumps(body.input), strict=True)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise ProblemError(422, f"invalid input for {body.type}", errors=errors) from None
    check_event_budget(body.type, validated, event_budget)
    return validated.model_dump(mode="json")


@router.post(
    "/tasks",
    status_code=202,
    response_model=CreateTaskResponse,
    responses={
        200: {"model": CreateTaskResponse, "description": "The task this Idempotency-Key made."},
        400: {"description": "Malformed Idempotency-Key."},
        409: {"description": "The task id this Idempotency-Key names belongs to another tenant."},
        422: {
            "description": "Unknown type, bad input (one that would record more events than"
            " a task may: TASKPLANE_MAX_EVENTS_PER_TASK), or a reused key with another body."
        },
        429: {
            "description": "The tenant (or the concurrency key) creates tasks too fast: retry"
            " after `Retry-After`; `RateLimit` and `RateLimit-Policy` say which rule"
            " (docs/rate-limits.md)."
        },
    },
)
async def create_task(
    body: CreateTaskRequest,
    response: Response,
    services: ServicesDep,
    tenant: TenantDep,
    limiter: CreationLimiterDep,
    start_rates: StartRatesDep,
    turns: CreationTurnsDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> CreateTaskResponse:
    """Start a task; with an `Idempotency-Key`, a repeat returns the same task (200)."""
    check_creation_rate(limiter, tenant)
    key = parse_idempotency_key(idempotency_key) if idempotency_key is not None else None
    task_input = validated_task_input(body, services.settings.max_events_per_task)
    # Keys are scoped per tenant: the same key in two tenants names two tasks.
    task_id = task_id_for_key(tenant, key) if key else str(uuid.uuid4())
    fingerprint = request_fingerprint(body.fingerprint_fields())
    # A debounced type's creations collapse into one task (docs/rate-limits.md).
    if (debounce := debounce_of(services, body.type)) is not None:
        return await create_debounced(
            services,
            debounce,
            tenant=tenant,
            body=body,
            task_input=task_input,
            idempotency_key=key,
            fingerprint=fingerprint,
            response=response,
        )
    # One tenant's flood waits here for its turn, not in front of other tenants'
    # creations (api/creation_turns.py).
    async with turns.turn(tenant):
        # Shared start rates (docs/rate-limits.md): a 429 here, or a start deferred;
        # a repeat of an Idempotency-Key whose task exists is answered, never limited.
        admission = await start_rates.admit_new(services.pool, task_id, key, tenant, body)
        answer_headers(response, admission)
        # Ownership first, before the workflow (or anything else about it) exists.
        owner = await TaskOwners(services.pool).claim(task_id, tenant, body.concurrency_key)
        if owner is None:
            raise ProblemError(
                409, f"task id {task_id} belongs to a task that was pruned (retention)"
            )
        if owner != tenant:
            raise ProblemError(409, f"task id {task_id} is taken")
        webhook = await subscribe_webhook(  # stored before the task's first event can exist
            services, task_id, body.webhook, request_hash=fingerprint, idempotent=key is not None
        )
        # Names this request: if the workflow's memo carries it, this request started it.
        nonce = str(uuid.uuid4())
        request = workflow_input(body, task_id, task_input, tenant, services.settings)
        delay = timedelta(seconds=admission.delay_seconds) if admission.delay_seconds else None
        # Over its key's limit: parked, its workflow woken when a slot frees (docs/flow-control.md).
        parked = False
        if delay is None:
            delay = await park_if_full(
                services.pool,
                request,
                services.settings,
                turns,
                request_hash=fingerprint,
                request_nonce=nonce,
            )
            parked = delay is not None
        # Parked in the store: no workflow until its wake-up starts it. A repeat of a task
        # parked so finds its stored start (the request's memo), run or not, and starts nothing.
        held = await parked_start(
            services,
            request,
            parked=parked,
            repeat=key is not None,
            fingerprint=fingerprint,
            nonce=nonce,
        )
        if held is None:
            await services.temporal.start(
                request,
                request_hash=fingerprint,
                request_nonce=nonce,
                start_delay=delay,
                deferred_by=admission.rule,
                parked=parked,
            )
        description: TaskDescription | None = None
        if key is not None:
            description = held or await services.temporal.describe(task_id)
            if description is not None and description.request_hash != fingerprint:
                raise ProblemError(
                    422, "this Idempotency-Key was already used with a different request body"
                )
            if description is not None and description.request_nonce != nonce:
                response.status_code = 200
        # Without a key this request created the task: pending, or queued if it parked; asking
        # the store and Temporal again would cost every creation three more round trips.
        if key is None:
            status = TaskStatus.QUEUED if parked else TaskStatus.PENDING
        else:
            status = (await find_task(services, task_id, tenant, description=description)).status
        return CreateTaskResponse(
            task_id=task_id,
            workflow_id=workflow_id_for(task_id),
            status=status,
            links=_links(task_id),
            webhook=webhook,
        )


@router.get("/tasks/{task_id}", response_model=TaskSnapshot)
async def get_task(task_id: str, services: ServicesDep, tenant: TenantDep) -> TaskSnapshot:
    """The task's current state: status, progress, result or error, the live metadata
    and output streams its code wrote, as of `last_sequence` (the stream's snapshot)."""
    return await build_snapshot(services, task_id, tenant)


@router.get("/tasks", response_model=TaskPageView)
async def list_tasks(
    services: ServicesDep,
    tenant: TenantDep,
    status: TaskStatus | None = None,
    type: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]+$")] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000, description=PAGE_SIZE_DOC)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TaskPageView:
    """The tenant's tasks, newest first; `next_cursor` fetches the next page."""
    most = services.settings.limit_tasks_page_size
    limit = min(DEFAULT_TASKS_PAGE, most) if limit is None else limit
    check_page_size(limit, most, "limit_tasks_page_size")
    try:
        page = await services.tasks.page(
            status=status.value if status else None,
            task_type=type,
            limit=limit,
            cursor=cursor,
            tenant=tenant,
        )
    except InvalidCursorError as exc:
        raise ProblemError(400, str(exc)) from None
    return TaskPageView(
        tasks=[view_from_record(record) for record in page.tasks], next_cursor=page.next_cursor
    )


@router.get("/tasks/{task_id}/history")
async def task_history(
    task_id: str,
    services: ServicesDep,
    tenant: TenantDep,
    after: Annotated[int, Query(ge=0, le=MAX_SEQUENCE)] = 0,
    limit: Annotated[int | None, Query(ge=1, le=1000, description=HISTORY_SIZE_DOC)] = None,
    version: VersionQuery = "latest",
) -> Response:
    """A page of events in `sequence` order; `next_after` resumes after it."""
    most = services.settings.limit_history_page_size
    limit = min(DEFAULT_HISTORY_PAGE, most) if limit is None else limit
    check_page_size(limit, most, "limit_history_page_size")
    await find_task(services, task_id, tenant)
    events = await services.events.history(parse_task_id(task_id), after=after, limit=limit)
    next_after = events[-1].sequence if events else after
    # The stored envelopes are served as stored (no re-serialisation), but for the few
    # of an older version of their type when the client asked for the latest.
    served = (as_requested(e.envelope_json, e.event_type, version)[1] for e in events)
    body = '{"events":[' + ",".join(served) + f'],"next_after":{next_after}}}'
    return Response(body, media_type="application/json")
