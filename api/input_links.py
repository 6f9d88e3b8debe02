"""Signed one-time links that deliver ONE input of ONE task without an API key.

For an approval link in an e-mail: whoever holds the link may deliver the input
`name` of the task once, before it expires. The token is `<payload>.<signature>`
like a stream token (api/stream_tokens.py), signed with a key derived from the same
secret (`TASKPLANE_STREAM_TOKEN_SECRET`; set it, or links die with the process that
minted them) for this purpose only, so neither kind passes for the other. The
payload names the task, the tenant, the input, the expiry and a random link id;
the link id is stored when the link delivers (`store/inputs.py`), so it delivers
once. The page opens it at `/#/input/<token>`: a fragment, so the token stays out
of server and proxy logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from api.stream_tokens import StreamTokens, b64url, unb64url

_VERSION = 1
_KIND = "input"


class InvalidInputLinkError(Exception):
    """The link cannot deliver; the message says why (safe to show)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class InputGrant:
    link_id: str
    task_id: str
    tenant: str
    name: str
    expires_at: datetime


class InputLinks:
    def __init__(
        self, secret: bytes, *, ttl_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    @classmethod
    def sharing(cls, tokens: StreamTokens, *, ttl_seconds: float) -> InputLinks:
        return cls(tokens.derived_secret("input-link"), ttl_seconds=ttl_seconds)

    def mint(
        self, task_id: str, tenant: str, name: str, *, ttl_seconds: float | None = None
    ) -> tuple[str, InputGrant]:
        ttl = min(ttl_seconds or self.ttl_seconds, self.ttl_seconds)
        expires = round(self._clock() + ttl, 3)
        link_id = secrets.token_urlsafe(16)
        claims = {
            "v": _VERSION,
            "k": _KIND,
            "id": link_id,
            "task": task_id,
            "tenant": tenant,
            "name": name,
            "exp": expires,
        }
        body = b64url(json.dumps(claims, separators=(",", ":")).encode())
        grant = InputGrant(link_id, task_id, tenant, name, datetime.fromtimestamp(expires, UTC))
        return f"{body}.{self._sign(body)}", grant

    def verify(self, token: str) -> InputGrant:
        body, dot, signature = token.partition(".")
        if not dot or len(token) > 2048:
            raise InvalidInputLinkError("malformed input link")
        if not hmac.compare_digest(self._sign(body).encode(), signature.encode()):
            raise InvalidInputLinkError("the input link's signature does not match")
        try:
            claims = json.loads(unb64url(body))
            grant = InputGrant(
                link_id=str(claims["id"]),
                task_id=str(claims["task"]),
                tenant=str(claims["tenant"]),
                name=str(claims["name"]),
                expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC),
            )
            version, kind = claims["v"], claims["k"]
        except (ValueError, KeyError, TypeError, OverflowError):
            raise InvalidInputLinkError("malformed input link") from None
        if version != _VERSION or kind != _KIND:
            raise InvalidInputLinkError("unknown input link version")
        if self._clock() >= grant.expires_at.timestamp():
            raise InvalidInputLinkError("the input link has expired", expired=True)
        return grant

    def _sign(self, body: str) -> str:
        return b64url(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
