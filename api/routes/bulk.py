"""Bulk operations: `POST /tasks/bulk` and `GET /bulk/{id}` (docs/bulk-operations.md).

The API validates the request, stores the operation and starts its workflow
(workflows/bulk.py), which selects the caller's matching tasks and acts on each through
its `control` update. The counts are read from the store, where each matched task's
outcome is written once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import TenantDep
from api.deps import ServicesDep
from api.idempotency import parse_idempotency_key, request_fingerprint
from api.problems import ProblemError
from schemas.bulk import BulkAction, BulkFilter, BulkStatus, BulkWorkflowInput, bulk_task_queue
from settings.bulk import BulkSettings
from store.bulk import BulkStore, StoredOperation
from temporal.bulk import start_bulk_operation

router = APIRouter(tags=["tasks"])  # task control, in bulk

# Bulk operation ids made from an Idempotency-Key: another namespace than task ids'.
BULK_NAMESPACE = uuid.UUID("5d4b8f0e-7c1a-4f0b-9e65-2a1c3b9d7e42")


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: BulkAction = Field(examples=["cancel"])
    filter: BulkFilter = Field(examples=[{"status": ["running"], "type": "demo.pipeline"}])


class BulkLinks(BaseModel):
    self: str


class BulkOperationView(BaseModel):
    """A bulk operation and how far it got: `matched` tasks, of which `done` were acted
    on, `skipped` made no sense for the action (e.g. already completed or paused) and
    `failed` could not be acted on; `reasons` counts the skipped and failed by why."""

    id: str
    action: BulkAction
    filter: BulkFilter
    status: BulkStatus
    matched: int
    done: int
    skipped: int
    failed: int
    pending: int
    reasons: dict[str, int]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    links: BulkLinks


async def _view(store: BulkStore, stored: StoredOperation) -> BulkOperationView:
    operation = stored.operation
    counts = await store.counts(operation.id)
    return BulkOperationView(
        id=operation.id,
        action=operation.action,
        filter=operation.filter,
        status=operation.status,
        matched=counts.matched,
        done=counts.done,
        skipped=counts.skipped,
        failed=counts.failed,
        pending=counts.pending,
        reasons=counts.reasons,
        created_at=operation.created_at,
        updated_at=operation.updated_at,
        finished_at=operation.finished_at,
        links=BulkLinks(self=f"/bulk/{operation.id}"),
    )


@router.post(
    "/tasks/bulk",
    status_code=202,
    response_model=BulkOperationView,
    responses={
        200: {"model": BulkOperationView, "description": "The operation this key made."},
        400: {"description": "Malformed Idempotency-Key."},
        409: {"description": "The operation id this Idempotency-Key names is another's."},
        422: {"description": "Bad action or filter, or a reused key with another body."},
        503: {"description": "Postgres or Temporal failed or did not answer: retry later."},
    },
)
async def create_bulk_operation(
    body: BulkRequest,
    response: Response,
    services: ServicesDep,
    tenant: TenantDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> BulkOperationView:
    """Pause, resume or cancel every task of the caller's that matches `filter`, in the
    background; `GET /bulk/{id}` shows the progress. With an `Idempotency-Key`, a repeat
    returns the same operation (200)."""
    key = parse_idempotency_key(idempotency_key) if idempotency_key is not None else None
    store = BulkStore(services.pool)
    op_id = str(uuid.uuid5(BULK_NAMESPACE, f"{tenant}\x00{key}")) if key else str(uuid.uuid4())
    fingerprint = request_fingerprint(body.model_dump(mode="json"))
    stored, created = await store.create(
        op_id=op_id,
        tenant=tenant,
        action=body.action,
        filter_json=body.filter.model_dump(mode="json", exclude_none=True),
        request_hash=fingerprint,
    )
    if not created:
        if stored.operation.tenant != tenant:  # a UUIDv5 collision across tenants: never
            raise ProblemError(409, f"bulk operation id {op_id} is taken")
        if stored.request_hash != fingerprint:
            raise ProblemError(
                422, "this Idempotency-Key was already used with a different request body"
            )
        response.status_code = 200
    settings = BulkSettings()
    # Started on a repeat too: a first request whose start failed is completed by it.
    await start_bulk_operation(
        services.temporal.client,
        BulkWorkflowInput(
            bulk_id=op_id,
            heartbeat_seconds=settings.heartbeat_timeout_seconds,
            pages_per_run=settings.pages_per_run,
        ),
        task_queue=bulk_task_queue(services.settings.task_queue),
        rpc_timeout=timedelta(seconds=services.settings.temporal_rpc_timeout_seconds),
    )
    return await _view(store, stored)


class BulkOperationList(BaseModel):
    operations: list[BulkOperationView]


@router.get(
    "/tasks/bulk",
    response_model=BulkOperationList,
    responses={503: {"description": "Postgres failed or did not answer: retry later."}},
)
async def list_bulk_operations(
    services: ServicesDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many.")] = 20,
) -> BulkOperationList:
    """The caller's bulk operations, newest first, with their progress."""
    store = BulkStore(services.pool)
    stored = await store.newest(tenant, limit)
    return BulkOperationList(operations=[await _view(store, one) for one in stored])


@router.get(
    "/bulk/{bulk_id}",
    response_model=BulkOperationView,
    responses={
        404: {"description": "No such bulk operation of the caller's."},
        503: {"description": "Postgres failed or did not answer: retry later."},
    },
)
async def get_bulk_operation(
    bulk_id: str, services: ServicesDep, tenant: TenantDep
) -> BulkOperationView:
    """A bulk operation's progress; `status` is `completed` once every matched task has
    its outcome."""
    store = BulkStore(services.pool)
    try:
        op_id = str(uuid.UUID(bulk_id))
    except ValueError:
        raise ProblemError(404, f"no bulk operation {bulk_id[:100]}") from None
    stored = await store.get(op_id)
    if stored is None or stored.operation.tenant != tenant:
        raise ProblemError(404, f"no bulk operation {op_id}")
    return await _view(store, stored)
