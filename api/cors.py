"""Cross-origin access (CORS) for pages served from other origins (docs/security.md).

`TASKPLANE_CORS_ORIGINS` lists the origins (`scheme://host[:port]`, comma-separated;
`*` for any) whose pages may call the API and follow its streams. None by default: a
browser then refuses every cross-origin read, as before.

Starlette's `CORSMiddleware` runs OUTSIDE authentication, so a preflight (`OPTIONS`,
which never carries a key) is answered without one, and a 401, 404 or 429 carries the
CORS headers a page needs to read the problem+json. Credentials are never allowed:
keys travel in `Authorization` and streams in `?token=`, so no cookie is needed, and a
page of an allowed origin still needs a key to get anything that is not public.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from settings import ConfigurationError

# What clients send: the key, JSON bodies, idempotent creation, SSE resume.
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID")
# What a page may read besides the CORS-safelisted headers.
EXPOSED_HEADERS = (
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "Taskplane-Start-Delay",  # a start deferred by the rate limit (docs/rate-limits.md)
    "Location",
    "X-Request-ID",
    "WWW-Authenticate",
)
ALLOWED_METHODS = ("GET", "POST")
PREFLIGHT_MAX_AGE_SECONDS = 600

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ORIGIN = re.compile(
    rf"^https?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{{1,5}}))?$"
)


def parse_origins(value: str) -> list[str]:
    """`TASKPLANE_CORS_ORIGINS` as a list; a malformed entry is a `ConfigurationError`."""
    origins: list[str] = []
    for raw in value.split(","):
        origin = raw.strip()
        if not origin:
            continue
        if origin != "*":
            match = _ORIGIN.fullmatch(origin)
            if match is None or int(match["port"] or 1) > 65535:
                raise ConfigurationError(
                    f"TASKPLANE_CORS_ORIGINS: {origin!r} is not an origin: give"
                    " scheme://host[:port] (http or https; no path, no trailing slash), or *"
                )
        origins.append(origin.lower())
    if "*" in origins and len(origins) > 1:
        raise ConfigurationError("TASKPLANE_CORS_ORIGINS: `*` allows every origin; list no others")
    return list(dict.fromkeys(origins))


def install_cors(app: FastAPI, origins_setting: str) -> list[str]:
    """Adds the middleware when origins are configured; call it after the auth middleware
    is added, so it wraps it (Starlette runs the middleware added last first)."""
    origins = parse_origins(origins_setting)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )
    return origins
