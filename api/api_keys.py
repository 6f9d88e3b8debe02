"""The configured API keys: which tenant each key acts for, and how a key is checked.

Parsing `TASKPLANE_API_KEYS` (`tenant:key` or `tenant:sha256:<hex>`, comma-separated)
and the constant-time lookup are the part of authentication that knows nothing of
HTTP; api/auth.py puts them in front of every request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass

from settings import ConfigurationError

log = logging.getLogger("api.auth")

_TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
# Shorter plain keys are accepted (local use) but warned about.
MIN_KEY_LENGTH = 16


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """(tenant, SHA-256 of the key) pairs; none means the API runs open."""

    entries: tuple[tuple[str, bytes], ...] = ()

    @property
    def open(self) -> bool:
        return not self.entries

    @property
    def tenants(self) -> frozenset[str]:
        return frozenset(tenant for tenant, _ in self.entries)

    @classmethod
    def parse(cls, spec: str) -> ApiKeys:
        """`tenant:key` or `tenant:sha256:<64 hex>`, comma-separated; refuses anything
        ambiguous at start rather than letting a typo lock a tenant out (or in)."""
        entries: list[tuple[str, bytes]] = []
        owners: dict[bytes, str] = {}
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            tenant, sep, key = item.partition(":")
            tenant, key = tenant.strip(), key.strip()
            if not sep or not key:
                raise ConfigurationError(
                    "TASKPLANE_API_KEYS entries are tenant:key or tenant:sha256:<hex>"
                )
            if not _TENANT_NAME.match(tenant):
                raise ConfigurationError(
                    f"TASKPLANE_API_KEYS: tenant {tenant!r} must be 1-64 of A-Z a-z 0-9 . _ -"
                )
            if key.startswith("sha256:"):
                hexdigest = key.removeprefix("sha256:")
                if not _SHA256_HEX.match(hexdigest):
                    raise ConfigurationError(
                        f"TASKPLANE_API_KEYS: tenant {tenant!r} has a sha256 key that is not"
                        " 64 hex digits"
                    )
                digest = bytes.fromhex(hexdigest)
            else:
                if len(key) < MIN_KEY_LENGTH:
                    log.warning(
                        "an API key of tenant %s is shorter than %d characters",
                        tenant,
                        MIN_KEY_LENGTH,
                    )
                digest = hash_key(key)
            if owners.get(digest, tenant) != tenant:
                raise ConfigurationError(
                    f"TASKPLANE_API_KEYS: one key is given to tenants {owners[digest]!r}"
                    f" and {tenant!r}"
                )
            owners[digest] = tenant
            entries.append((tenant, digest))
        return cls(tuple(entries))

    def tenant_for(self, key: str) -> str | None:
        """The key's tenant. Every configured hash is compared, whatever matches, so the
        time taken says nothing about which key (or how much of one) was right."""
        digest = hash_key(key)
        found: str | None = None
        for tenant, stored in self.entries:
            if hmac.compare_digest(digest, stored):
                found = tenant
        return found


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
