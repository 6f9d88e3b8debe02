"""Short-lived signed tokens that open ONE task's event stream, for browsers.

`EventSource` cannot send an `Authorization` header, so a page first asks
`POST /tasks/{id}/stream-token` (with its key) and then opens
`/tasks/{id}/events?token=…`. The token is `<payload>.<signature>`, both
base64url: the payload names the task, the tenant and the expiry; the
signature is HMAC-SHA256 over the payload with this API's secret, compared in
constant time. It is accepted on that task's events endpoint only (api/auth.py).

The token is checked when a stream connects, not while it runs: an open stream
outlives its token. `EventSource` reconnects on its own (idle timeout, network
loss, API restart) with the same URL, so after expiry the reconnect is refused
(401) and the page mints a fresh token and opens a new stream with
`?after=<last id>` (docs/security.md).

Without `TASKPLANE_STREAM_TOKEN_SECRET` each process draws a random secret at
start: a token then works only on the process that minted it (and not after a
restart). Several API processes behind one address need the same secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from settings import ConfigurationError, Settings

log = logging.getLogger(__name__)

_VERSION = 1
MIN_SECRET_BYTES = 16


class InvalidStreamTokenError(Exception):
    """The token cannot open this stream; the message says why (safe to show)."""


@dataclass(frozen=True, slots=True)
class StreamGrant:
    task_id: str
    tenant: str
    expires_at: float  # unix seconds


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StreamTokens:
    """Mints and checks stream tokens with one secret and one time to live."""

    def __init__(
        self, secret: bytes, *, ttl_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"a stream token secret needs at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamTokens:
        configured = settings.stream_token_secret
        if configured is not None and configured.get_secret_value():
            secret = configured.get_secret_value().encode()
            if len(secret) < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"TASKPLANE_STREAM_TOKEN_SECRET needs at least {MIN_SECRET_BYTES} bytes"
                )
        else:
            secret = secrets.token_bytes(32)
            log.info(
                "TASKPLANE_STREAM_TOKEN_SECRET is not set: stream tokens minted here work"
                " only on this API process"
            )
        return cls(secret, ttl_seconds=settings.stream_token_ttl_seconds)

    def mint(self, task_id: str, tenant: str) -> tuple[str, datetime]:
        """(token, expiry) for `tenant` to stream `task_id`."""
        expires = round(self._clock() + self.ttl_seconds, 3)
        payload = json.dumps(
            {"v": _VERSION, "task": task_id, "tenant": tenant, "exp": expires},
            separators=(",", ":"),
        ).encode()
        body = b64url(payload)
        return f"{body}.{self._sign(body)}", datetime.fromtimestamp(expires, UTC)

    def verify(self, token: str, task_id: str) -> StreamGrant:
        """The grant the token carries, or InvalidStreamTokenError."""
        body, dot, signature = token.partition(".")
        if not dot or len(token) > 2048:
            raise InvalidStreamTokenError("malformed stream token")
        # Bytes, not str: compare_digest refuses non-ASCII str, and the token is the client's.
        if not hmac.compare_digest(self._sign(body).encode(), signature.encode()):
            raise InvalidStreamTokenError("the stream token's signature does not match")
        try:
            claims = json.loads(unb64url(body))
            grant = StreamGrant(
                task_id=str(claims["task"]),
                tenant=str(claims["tenant"]),
                expires_at=float(claims["exp"]),
            )
            version = claims["v"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise InvalidStreamTokenError("malformed stream token") from None
        if version != _VERSION:
            raise InvalidStreamTokenError("unknown stream token version")
        if grant.task_id != task_id:
            raise InvalidStreamTokenError("the stream token is for another task")
        if self._clock() >= grant.expires_at:
            raise InvalidStreamTokenError(
                "the stream token expired; mint a new one with POST /tasks/{id}/stream-token"
            )
        return grant

    def derived_secret(self, purpose: str) -> bytes:
        """A key for another kind of signed token (input links: api/input_links.py) from
        the same secret: one secret to configure, and no token of one kind passes for
        one of another."""
        return hmac.new(self._secret, f"taskplane:{purpose}".encode(), hashlib.sha256).digest()

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
        return b64url(digest)
