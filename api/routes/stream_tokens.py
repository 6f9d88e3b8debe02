"""`POST /tasks/{id}/stream-token`: a short-lived token that opens that task's stream.

For browsers, whose `EventSource` cannot send the `Authorization` header. The
request itself needs the key (a token cannot mint a token), and the task must
be the tenant's. How tokens are made and checked: api/stream_tokens.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api.auth import TenantDep
from api.deps import ServicesDep
from api.lookup import find_task
from api.stream_tokens import StreamTokens

router = APIRouter(tags=["events"])


class StreamTokenView(BaseModel):
    token: str = Field(description="Pass as `?token=` to `GET /tasks/{id}/events`.")
    expires_at: datetime = Field(
        description="The token opens a stream until then; an open stream outlives it."
    )
    events_url: str = Field(description="The task's events URL with the token, ready to open.")


async def get_stream_tokens(request: Request) -> StreamTokens:
    tokens: StreamTokens = request.app.state.stream_tokens
    return tokens


StreamTokensDep = Annotated[StreamTokens, Depends(get_stream_tokens)]


@router.post(
    "/tasks/{task_id}/stream-token",
    status_code=201,
    response_model=StreamTokenView,
    summary="Mint a token that opens this task's event stream (for EventSource)",
)
async def mint_stream_token(
    task_id: str, services: ServicesDep, tenant: TenantDep, tokens: StreamTokensDep
) -> StreamTokenView:
    """The token is checked when a stream (re)connects: after `expires_at`, mint a new
    one and open the stream again with `?after=<last event id>`."""
    view = await find_task(services, task_id, tenant)
    token, expires_at = tokens.mint(view.task_id, tenant)
    return StreamTokenView(
        token=token,
        expires_at=expires_at,
        events_url=f"/tasks/{view.task_id}/events?token={quote(token, safe='')}",
    )
