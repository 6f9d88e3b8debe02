"""Inputs a task waits for (`wait_for_input`): deliver one, or mint a one-time link.

`POST /tasks/{id}/inputs/{name}` needs the tenant's key like every task route. The
link routes under `/input-links/{token}` are public: the signed token names the task,
its tenant and the input, and delivers once (api/input_links.py).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Request, Response
from pydantic import BaseModel, Field

from api.auth import TenantDep
from api.deps import ServicesDep
from api.idempotency import parse_idempotency_key
from api.input_links import InputGrant, InputLinks, InvalidInputLinkError
from api.inputs import InputDeliveryView, deliver_input
from api.limits import CreationLimiterDep, RateLimiter
from api.lookup import find_task
from api.problems import ProblemError
from schemas.tasks import TaskStatus
from store.inputs import TaskInputs

router = APIRouter(tags=["tasks"])

NameParam = Annotated[
    str,
    Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$", description="The input."),
]
ValueBody = Annotated[
    dict[str, Any],
    Body(
        description="The input's value: a JSON object matching the `input_schema` of the"
        " task's `task.input.requested.v1`.",
        examples=[{"approved": True, "comment": "looks good"}],
    ),
]


async def get_input_links(request: Request) -> InputLinks:
    links: InputLinks = request.app.state.input_links
    return links


InputLinksDep = Annotated[InputLinks, Depends(get_input_links)]

_DELIVER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": InputDeliveryView,
        "description": "A repeat of a delivery made with this Idempotency-Key.",
    },
    400: {"description": "Malformed Idempotency-Key."},
    409: {"description": "The task is not waiting for this input (or has ended)."},
    422: {
        "description": "The value does not match the input's schema (`errors` says where),"
        " or a reused Idempotency-Key with another value."
    },
    429: {"description": "Too many requests: retry after `Retry-After`."},
}


def _check_rate(limiter: RateLimiter, tenant: str) -> None:
    """Deliveries are writes like task creation, and share its per-tenant rate."""
    wait = limiter.take(tenant)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise ProblemError(
            429,
            f"tenant {tenant!r} writes faster than {limiter.rate:g} a second"
            " (TASKPLANE_LIMIT_TASK_CREATE_PER_SECOND / _BURST, shared with task creation)",
            headers={"Retry-After": str(retry_after)},
        )


@router.post(
    "/tasks/{task_id}/inputs/{name}",
    status_code=202,
    response_model=InputDeliveryView,
    responses=_DELIVER_RESPONSES,
    summary="Deliver an input the task waits for",
)
async def deliver(
    task_id: str,
    name: NameParam,
    value: ValueBody,
    response: Response,
    services: ServicesDep,
    tenant: TenantDep,
    limiter: CreationLimiterDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> InputDeliveryView:
    """The task takes it through a Temporal Update: 202 once its `task.input.received.v1`
    is recorded. With an `Idempotency-Key`, a repeat answers 200 with the same body."""
    _check_rate(limiter, tenant)
    key = parse_idempotency_key(idempotency_key) if idempotency_key is not None else None
    view, repeat = await deliver_input(
        services, task_id=task_id, tenant=tenant, name=name, value=value, key=key, via="api"
    )
    if repeat:
        response.status_code = 200
    return view


class InputLinkRequest(BaseModel):
    expires_in_seconds: float | None = Field(
        default=None,
        gt=0,
        description="How long the link stays valid; at most (and by default)"
        " TASKPLANE_INPUT_LINK_TTL_SECONDS.",
    )


class InputLinkView(BaseModel):
    url: str = Field(description="The task page's form for this input: send it to the person.")
    token: str = Field(description="The link's token (`/input-links/{token}`).")
    expires_at: datetime


@router.post(
    "/tasks/{task_id}/inputs/{name}/link",
    status_code=201,
    response_model=InputLinkView,
    responses={409: {"description": "The task has ended."}},
    summary="Mint a one-time link that delivers this input without an API key",
)
async def mint_input_link(
    task_id: str,
    name: NameParam,
    request: Request,
    services: ServicesDep,
    tenant: TenantDep,
    links: InputLinksDep,
    body: InputLinkRequest | None = None,
) -> InputLinkView:
    """For an approval e-mail: whoever holds the link may deliver the input once, before
    it expires, with no key. Keep it as secret as a key while it is valid."""
    view = await find_task(services, task_id, tenant)
    if view.status.terminal:
        raise ProblemError(409, f"task {view.task_id} is {view.status.value}")
    ttl = body.expires_in_seconds if body is not None else None
    token, grant = links.mint(view.task_id, tenant, name, ttl_seconds=ttl)
    return InputLinkView(
        url=f"{request.base_url}#/input/{token}", token=token, expires_at=grant.expires_at
    )


class WaitingInputView(BaseModel):
    name: str
    input_schema: dict[str, Any]
    deadline: str | None = None
    prompt: str | None = None
    sequence: int


class InputLinkStateView(BaseModel):
    task_id: str
    task_type: str | None
    status: TaskStatus
    name: str
    expires_at: datetime
    used: bool = Field(description="The link delivered already (it delivers once).")
    waiting: WaitingInputView | None = Field(
        description="What the task waits for under this name now; null: it does not wait."
    )


def _grant(links: InputLinks, token: str) -> InputGrant:
    try:
        return links.verify(token)
    except InvalidInputLinkError as exc:
        raise ProblemError(410 if exc.expired else 404, str(exc)) from None


TokenParam = Annotated[str, Path(min_length=1, max_length=2048)]
_LINK_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not an input link (malformed, or its signature does not match)."},
    410: {"description": "The link has expired or was used."},
    503: {"description": "Postgres or Temporal failed or did not answer: retry later."},
}


@router.get(
    "/input-links/{token}",
    response_model=InputLinkStateView,
    responses=_LINK_RESPONSES,
    summary="What a one-time input link delivers (no API key)",
)
async def input_link_state(
    token: TokenParam, services: ServicesDep, links: InputLinksDep
) -> InputLinkStateView:
    """For the page behind the link: the task, whether it still waits for the input (and
    its JSON Schema, to build a form), and whether the link was used."""
    grant = _grant(links, token)
    view = await find_task(services, grant.task_id, grant.tenant)
    inputs = TaskInputs(services.pool)
    waiting = next(
        (w for w in await inputs.waiting_inputs(view.task_id) if w.name == grant.name), None
    )
    return InputLinkStateView(
        task_id=view.task_id,
        task_type=view.type,
        status=view.status,
        name=grant.name,
        expires_at=grant.expires_at,
        used=await inputs.link_used(grant.link_id),
        waiting=WaitingInputView(**waiting.as_json()) if waiting else None,
    )


@router.post(
    "/input-links/{token}",
    status_code=202,
    response_model=InputDeliveryView,
    responses={
        **_LINK_RESPONSES,
        409: {"description": "The task is not waiting for this input (or has ended)."},
        422: {"description": "The value does not match the input's schema."},
        429: {"description": "Too many deliveries for the task's tenant: retry later."},
    },
    summary="Deliver the input a one-time link names (no API key)",
)
async def deliver_by_link(
    token: TokenParam,
    value: ValueBody,
    services: ServicesDep,
    links: InputLinksDep,
    limiter: CreationLimiterDep,
) -> InputDeliveryView:
    """Delivers once: the link's use is stored with the delivery, and given back when the
    task refuses the value (422) or is not waiting (409), so the person can try again."""
    grant = _grant(links, token)
    _check_rate(limiter, grant.tenant)
    inputs = TaskInputs(services.pool)
    claimed = await inputs.claim_link(
        grant.link_id, task_id=grant.task_id, name=grant.name, expires_at=grant.expires_at
    )
    if not claimed:
        raise ProblemError(410, "this input link was used already")
    try:
        view, _ = await deliver_input(
            services,
            task_id=grant.task_id,
            tenant=grant.tenant,
            name=grant.name,
            value=value,
            delivery_id=f"link-{grant.link_id}",
            via="link",
        )
    except BaseException:
        await inputs.release_link(grant.link_id)
        raise
    return view
