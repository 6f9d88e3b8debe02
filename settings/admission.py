"""Settings of concurrency keys and fairness (issue 24, docs/flow-control.md).

A section of `Settings` (it inherits from this class), kept in its own module so
settings/config.py stays one screen of plumbing. Same `TASKPLANE_` prefix.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_WEIGHT = re.compile(r"^\s*([^=,\s]+)\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*$")


def parse_tenant_weights(text: str) -> dict[str, float]:
    """`acme=5,beta=3` → {"acme": 5.0, "beta": 3.0}; ValueError names the bad part."""
    weights: dict[str, float] = {}
    for part in filter(str.strip, text.split(",")):
        match = _WEIGHT.match(part)
        if match is None:
            raise ValueError(f"not tenant=weight: {part.strip()!r}")
        weight = float(match.group(2))
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"a tenant's weight is above 0: {part.strip()!r}")
        weights[match.group(1)] = weight
    return weights


class AdmissionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASKPLANE_", extra="ignore")

    # Tasks of a type that declares no limit run at most this many at once per
    # concurrency key (default key: the tenant). Unset: unlimited, no admission at all.
    concurrency_limit: int | None = Field(default=None, ge=1)
    # Weighted round robin across tenants: `acme=5,beta=3` (others weigh 1). Used for who
    # gets a key's next free slot and as Temporal's fairness weight on every start.
    tenant_weights: str = ""
    # The reconciler's admission keeper: an admitted task's wake-up signal not confirmed
    # after this long is sent again; slot holders older than this are checked against
    # Temporal (a run that closed without giving its slot back frees it).
    admission_wake_after_seconds: float = Field(default=5.0, gt=0)
    admission_check_after_seconds: float = Field(default=30.0, ge=0)
    # A task created while its key is full (strategy `queue`) is parked: its workflow is
    # started with this start delay and woken (Signal-With-Start) when it is admitted,
    # so it takes no worker time while it waits. Should the delay run out first, the
    # run claims its slot as an unparked task does. 0: never park.
    admission_park_seconds: float = Field(default=86400.0, ge=0)
    # Where a parked task waits. `store`: only its ticket and `tasks` row exist (no
    # workflow until its wake-up starts it, so a flood of creations costs Temporal
    # nothing); `temporal`: its workflow is started at once with the delay above (the
    # Temporal UI lists it; each creation is a Temporal start).
    admission_park_in: Literal["store", "temporal"] = "store"

    @field_validator("concurrency_limit", mode="before")
    @classmethod
    def _unset_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("tenant_weights")
    @classmethod
    def _weights_parse(cls, value: str) -> str:
        parse_tenant_weights(value)
        return value

    @property
    def tenant_weight_map(self) -> dict[str, float]:
        return parse_tenant_weights(self.tenant_weights)
