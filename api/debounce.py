"""`POST /tasks` for a type with `debounce {key, period}` (docs/rate-limits.md).

Every creation goes to the window of (tenant, type, key) — `DebounceWorkflow`,
by update-with-start — and is answered 202 with the window's task id; the task
starts with the latest input a period after the last creation. An
Idempotency-Key keeps its meaning: its first answer is stored (migration 0017),
a repeat with the same body gets that task (200), with another body 422.
A webhook cannot be asked for here (422): which creation's would it be?
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Any

from fastapi import Response

from api.lookup import find_task
from api.models import CreateTaskRequest, CreateTaskResponse, TaskLinks
from api.problems import ProblemError
from api.rate_limits import type_rates
from api.services import Services
from schemas.debounce import DebounceCreation, DebounceStart
from schemas.tasks import TaskStatus
from schemas.workflow import workflow_id_for
from settings.rate_limits import Debounce
from store.debounced import DebouncedRequests, KeyedAnswer
from store.tenants import TaskOwners
from temporal.debounce import DebounceClient

log = logging.getLogger(__name__)

CONCURRENCY_KEY = "concurrency_key"


def debounce_of(services: Services, task_type: str) -> Debounce | None:
    rates = type_rates(services.settings.rate_limits, task_type)
    return rates.debounce if rates is not None else None


def debounce_key(
    rule: Debounce, tenant: str, body: CreateTaskRequest, task_input: dict[str, Any]
) -> str:
    if rule.key == CONCURRENCY_KEY:
        return body.concurrency_key or tenant
    return json.dumps(task_input.get(rule.key), sort_keys=True)


async def _status(services: Services, task_id: str, tenant: str) -> TaskStatus:
    try:
        return (await find_task(services, task_id, tenant)).status
    except ProblemError as exc:
        if exc.status == 404:  # the window is open: Temporal has no task run yet
            return TaskStatus.PENDING
        raise


async def create_debounced(
    services: Services,
    rule: Debounce,
    *,
    tenant: str,
    body: CreateTaskRequest,
    task_input: dict[str, Any],
    idempotency_key: str | None,
    fingerprint: str,
    response: Response,
) -> CreateTaskResponse:
    if body.webhook is not None:
        raise ProblemError(422, f"task type {body.type!r} is debounced: it takes no webhook")
    requests = DebouncedRequests(services.pool)
    known = await requests.find(tenant, idempotency_key) if idempotency_key else None
    if known is None:
        key = debounce_key(rule, tenant, body, task_input)
        nonce = str(uuid.uuid4())
        proposed = str(uuid.uuid4())
        client = DebounceClient(
            services.temporal.client,
            task_queue=services.settings.task_queue,
            rpc_timeout=timedelta(seconds=services.settings.temporal_rpc_timeout_seconds),
        )
        answer = await client.add(
            DebounceStart(
                tenant=tenant, task_type=body.type, key=key, period_seconds=rule.period_seconds
            ),
            DebounceCreation(
                task_id=proposed, input=task_input, request_hash=fingerprint, request_nonce=nonce
            ),
        )
        if answer.task_id == proposed:  # this creation opened the window: its task's owner
            await TaskOwners(services.pool).claim(proposed, tenant, body.concurrency_key)
        log.info(
            "task creation debounced",
            extra={
                "task_id": answer.task_id,
                "collapsed": answer.collapsed,
                "task_type": body.type,
            },
        )
        known = KeyedAnswer(answer.task_id, fingerprint)
        if idempotency_key:
            stored = await requests.remember(tenant, idempotency_key, known)
            if stored.task_id != known.task_id:
                known = stored  # a concurrent request with the key answered first
                response.status_code = 200
    else:
        if known.request_hash != fingerprint:
            raise ProblemError(
                422, "this Idempotency-Key was already used with a different request body"
            )
        response.status_code = 200
    base = f"/tasks/{known.task_id}"
    return CreateTaskResponse(
        task_id=known.task_id,
        workflow_id=workflow_id_for(known.task_id),
        status=await _status(services, known.task_id, tenant),
        links=TaskLinks(self=base, events=f"{base}/events", history=f"{base}/history"),
    )
