"""What `POST /tasks` decides about a task's concurrency (docs/flow-control.md): the
type's limit (its registration, else `TASKPLANE_CONCURRENCY_LIMIT`), the key (default:
the tenant) and the priority, carried in the workflow's input so the run, and every
replay of it, knows whether it takes a slot before its first step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from api.creation_turns import CreationTurns
from api.models import CreateTaskRequest
from api.services import Services
from schemas.admission import concurrency_policy
from schemas.admission_claim import admission_claim
from schemas.workflow import TaskWorkflowInput
from settings import Settings
from store.admission_park import ParkedStart, park, parked_starts
from temporal.tasks import TaskDescription


def workflow_input(
    body: CreateTaskRequest,
    task_id: str,
    task_input: dict[str, Any],
    tenant: str,
    settings: Settings,
) -> TaskWorkflowInput:
    policy = concurrency_policy(body.type, settings.concurrency_limit)
    return TaskWorkflowInput(
        task_id=task_id,
        task_type=body.type,
        input=task_input,
        owner=tenant,
        concurrency_key=(body.concurrency_key or tenant) if policy else None,
        concurrency_limit=policy.limit if policy else None,
        concurrency_strategy=policy.strategy if policy else "queue",
        priority=body.priority,
    )


async def park_if_full(
    pool: AsyncConnectionPool,
    request: TaskWorkflowInput,
    settings: Settings,
    turns: CreationTurns,
    *,
    request_hash: str,
    request_nonce: str,
) -> timedelta | None:
    """Park a `queue` task whose key is full (store/admission_park.py): its start delay,
    with `request.parked_position` set; None: start it now (its claim decides). One
    park of a key at a time in this process (`CreationTurns.park_turn`)."""
    claim = admission_claim(request)
    if settings.admission_park_seconds <= 0 or claim is None or claim.strategy != "queue":
        return None
    start = ParkedStart(
        input=request.model_dump(mode="json"),
        request_hash=request_hash,
        request_nonce=request_nonce,
    )
    async with turns.park_turn(claim.task_type, claim.concurrency_key):
        position = await park(pool, claim, start)
    if position is None:
        return None
    request.parked_position = position
    return timedelta(seconds=settings.admission_park_seconds)


async def parked_start(
    services: Services,
    request: TaskWorkflowInput,
    *,
    parked: bool,
    repeat: bool,
    fingerprint: str,
    nonce: str,
) -> TaskDescription | None:
    """What a task parked in the store (`TASKPLANE_ADMISSION_PARK_IN=store`) says of the
    request that created it, as a run's memo would: this request's, when it has just
    parked it; the stored start's, for a repeat (an Idempotency-Key's) of a task with a
    parked ticket. None: start the workflow as usual (it leaves an existing run alone)."""
    if parked:
        if services.settings.admission_park_in != "store":
            return None
        return TaskDescription(None, request.task_type, fingerprint, nonce, failing=None)
    if not repeat:
        return None
    stored = (await parked_starts(services.pool, [request.task_id])).get(request.task_id)
    if stored is None:
        return None
    return TaskDescription(
        None, request.task_type, stored.request_hash, stored.request_nonce, failing=None
    )
