"""The `Idempotency-Key` header, as the IETF "Idempotency-Key HTTP Header Field" draft has it.

The value is a Structured Field string (RFC 8941: `"…"`, printable ASCII,
`\\"` and `\\\\` escapes). Bare tokens (`Idempotency-Key: order-42`) are accepted
too, since that is what most clients send. The key, scoped by tenant, derives
the task id (UUIDv5), so concurrent requests with one key name one workflow and
Temporal's use-existing conflict policy starts it once.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from api.problems import ProblemError

MAX_KEY_LENGTH = 255
IDEMPOTENCY_NAMESPACE = uuid.UUID("0b0e3c38-8c36-4f4e-bb0d-2f5f6f1d9a77")

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~:/=-]+$")
_SF_STRING = re.compile(r'^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$')


def parse_idempotency_key(raw: str) -> str:
    """The key's value, or a 400 problem naming what is wrong with it."""
    value = raw.strip()
    quoted = _SF_STRING.match(value)
    if quoted:
        key = re.sub(r'\\(["\\])', r"\1", quoted.group(1))
    elif _TOKEN.match(value):
        key = value
    else:
        raise ProblemError(
            400,
            "Idempotency-Key must be a structured-field string such as "
            '"8e03978e-40d5-43e8-bc93-6894a57f9324" (printable ASCII)',
        )
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ProblemError(400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    return key


def task_id_for_key(tenant: str, key: str) -> str:
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{tenant}\x00{key}"))


def request_fingerprint(body: dict[str, Any]) -> str:
    """A hash of the request body, insensitive to key order and whitespace."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
