"""API keys, and the tenant each request acts for.

`TASKPLANE_API_KEYS="tenant_a:key_a,tenant_b:sha256:<hex>"` (api/api_keys.py) maps keys to
tenants; a tenant may have several keys (rotation), and a key may be given as
the hex SHA-256 of itself so the configuration never holds it. A request
presents `Authorization: Bearer <key>`; the key is hashed and compared with
every configured hash in constant time.

`AuthMiddleware` runs in front of every route, so a route added later is
protected without doing anything: only the public paths below skip it (health,
metrics, the API's own description and the event schemas, and the task page,
which must load before it can ask for a key). Everything else answers 401
problem+json with `WWW-Authenticate: Bearer` unless a key (or, on
`GET /tasks/{id}/events` only, a stream token from api/stream_tokens.py) says
which tenant the request acts for. With no keys configured the API runs open:
every request acts for the tenant `default` (and a loud warning says so).

Handlers read the tenant through `TenantDep`; a task belongs to the tenant that
created it and is invisible (404) to every other (api/lookup.py).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Request
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.api_keys import ApiKeys
from api.problems import PROBLEM_JSON, ProblemError, problem_body
from api.routes.ui import PUBLIC_PATHS as PAGE_PATHS
from api.routes.ui import PUBLIC_PREFIXES as PAGE_PREFIXES
from api.stream_tokens import InvalidStreamTokenError, StreamTokens
from settings import Settings
from store.tenants import DEFAULT_TENANT
from telemetry.logs import bind_log_context

log = logging.getLogger(__name__)

# Where the middleware leaves the tenant for `TenantDep`.
TENANT_SCOPE_KEY = "taskplane.tenant"

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        # What the API looks like is no secret; a client needs it before it has a key.
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/schemas/events",
        *PAGE_PATHS,
    }
)
# An input link's signed token is its own credential (api/input_links.py).
PUBLIC_PREFIXES = ("/schemas/events/", "/input-links/", *PAGE_PREFIXES)

_EVENTS_PATH = re.compile(r"^/tasks/([^/]+)/events$")
REALM = 'Bearer realm="taskplane"'


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class UnauthorizedError(Exception):
    def __init__(self, detail: str, *, error: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        # RFC 6750 error codes: absent (no credentials), invalid_request, invalid_token.
        self.error = error

    @property
    def challenge(self) -> str:
        return f'{REALM}, error="{self.error}"' if self.error else REALM


class AuthMiddleware:
    """Names the tenant of every non-public request, or answers 401 problem+json."""

    def __init__(self, app: ASGIApp, *, keys: ApiKeys, tokens: StreamTokens) -> None:
        self.app = app
        self.keys = keys
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            tenant = self.authenticate(scope)
        except UnauthorizedError as exc:
            await _send_unauthorized(send, scope["path"], exc)
            return
        scope[TENANT_SCOPE_KEY] = tenant
        bind_log_context(tenant=tenant)  # every line of this request says whose it is
        await self.app(scope, receive, send)

    def authenticate(self, scope: Scope) -> str:
        authorization = Headers(scope=scope).get("authorization")
        if authorization is not None:
            return self._bearer(authorization)
        token = _stream_token(scope)
        if token is not None:
            return self._stream_token(scope["path"], token)
        if self.keys.open:
            return DEFAULT_TENANT
        raise UnauthorizedError("this endpoint needs an API key: Authorization: Bearer <key>")

    def _bearer(self, authorization: str) -> str:
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            if self.keys.open:
                return DEFAULT_TENANT
            raise UnauthorizedError(
                "the Authorization header must be `Bearer <key>`", error="invalid_request"
            )
        if self.keys.open:  # a client that always sends its key works against an open API
            return DEFAULT_TENANT
        tenant = self.keys.tenant_for(key)
        if tenant is None:
            raise UnauthorizedError("unknown API key", error="invalid_token")
        return tenant

    def _stream_token(self, path: str, token: str) -> str:
        match = _EVENTS_PATH.match(path)
        assert match is not None  # _stream_token(scope) only reads it on this path
        try:
            task_id = str(uuid.UUID(match.group(1)))
        except ValueError:
            raise UnauthorizedError(
                "the stream token is for another task", error="invalid_token"
            ) from None
        try:
            grant = self.tokens.verify(token, task_id)
        except InvalidStreamTokenError as exc:
            raise UnauthorizedError(str(exc), error="invalid_token") from None
        if not self.keys.open and grant.tenant not in self.keys.tenants:
            raise UnauthorizedError(
                "the stream token's tenant has no key any more", error="invalid_token"
            )
        return grant.tenant


def _stream_token(scope: Scope) -> str | None:
    """`?token=` counts only on `GET /tasks/{id}/events`; anywhere else it is ignored."""
    if scope["method"] != "GET" or not _EVENTS_PATH.match(scope["path"]):
        return None
    query = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(query, keep_blank_values=True).get("token")
    return values[-1] if values else None


async def _send_unauthorized(send: Send, path: str, exc: UnauthorizedError) -> None:
    payload = json.dumps(problem_body(401, exc.detail, instance=path)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"www-authenticate", exc.challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# --- handler side ------------------------------------------------------------------

# Declared so the OpenAPI document says how to authenticate; AuthMiddleware does the work.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="`Authorization: Bearer <key>`, a key from TASKPLANE_API_KEYS"
    " (not needed when the API runs open).",
)
_stream_token_query = APIKeyQuery(
    name="token",
    auto_error=False,
    scheme_name="streamToken",
    description="A token from `POST /tasks/{id}/stream-token`, for this task's events"
    " only (EventSource cannot send headers).",
)


async def get_tenant(
    request: Request,
    _key: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    return _tenant_of(request)


async def get_stream_tenant(
    request: Request,
    _key: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _token: Annotated[str | None, Depends(_stream_token_query)],
) -> str:
    return _tenant_of(request)


def _tenant_of(request: Request) -> str:
    tenant = request.scope.get(TENANT_SCOPE_KEY)
    if not isinstance(tenant, str):  # a public path asked for a tenant: fail closed
        raise ProblemError(401, "no tenant for this request", headers={"WWW-Authenticate": REALM})
    return tenant


TenantDep = Annotated[str, Depends(get_tenant)]
# The events endpoint: a key, or a stream token for that task.
StreamTenantDep = Annotated[str, Depends(get_stream_tenant)]


def install_auth(app: FastAPI, settings: Settings, tokens: StreamTokens) -> ApiKeys:
    """Protect every non-public path of `app`; loud when there is nothing to protect with."""
    keys = ApiKeys.parse(settings.api_keys.get_secret_value())
    if keys.open:
        log.warning(
            "TASKPLANE_API_KEYS is not set: the API is OPEN, every request acts for tenant"
            " %r with no key. Set API keys before exposing it beyond this machine.",
            DEFAULT_TENANT,
        )
    else:
        log.info("API keys required", extra={"tenants": sorted(keys.tenants)})
    app.add_middleware(AuthMiddleware, keys=keys, tokens=tokens)
    return keys
