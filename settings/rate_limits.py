"""`TASKPLANE_RATE_LIMITS`: how fast tasks may start, per tenant, per key and per type.

One JSON value (pydantic-settings reads nested models from JSON), e.g.

    {"tenant": {"per_second": 20, "per_minute": 600},
     "key": {"per_second": 2, "burst": 5},
     "tenants": {"acme": {"tenant": {"per_second": 100}}},
     "types": {"report.nightly": {"rate": {"per_minute": 6}, "over_limit": "defer"},
               "search.reindex": {"debounce": {"key": "index", "period_seconds": 5}}}}

Every rate is a GCRA (a token bucket without a refill tick): `per_second` lets
`burst` (default: the rate, at least 1) through at once and then one every
1/rate s; `per_minute` the same over a minute with a burst of the minute's
quota. A creation must fit every rule that applies (tenant, key, type) at once.
docs/rate-limits.md has the whole story.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OverLimit = Literal["reject", "defer"]


class Rate(BaseModel):
    """Starts per second and/or per minute; `burst` is how many the per-second rule
    lets through at once (default: one second's worth)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: int | None = Field(default=None, ge=1, le=1_000_000)
    per_minute: int | None = Field(default=None, ge=1, le=60_000_000)
    burst: int | None = Field(default=None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _some_rate(self) -> Rate:
        if self.per_second is None and self.per_minute is None:
            raise ValueError("a rate needs per_second, per_minute or both")
        if self.burst is not None and self.per_second is None:
            raise ValueError("burst belongs to per_second (a per-minute rule bursts its quota)")
        return self

    def rules(self) -> list[tuple[str, float, int, int, int]]:
        """(suffix, emission interval ms, burst, quota, window s) for each rule."""
        found: list[tuple[str, float, int, int, int]] = []
        if self.per_second is not None:
            burst = self.burst or self.per_second
            found.append(("s", 1000.0 / self.per_second, burst, self.per_second, 1))
        if self.per_minute is not None:
            found.append(("m", 60_000.0 / self.per_minute, self.per_minute, self.per_minute, 60))
        return found


class TenantRates(BaseModel):
    """One tenant's overrides: its whole-tenant rate and the rate of each of its keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: Rate | None = None
    key: Rate | None = None


class Debounce(BaseModel):
    """Creations of the type with the same key inside `period_seconds` of each other
    collapse into one task that starts, with the latest input, a period after the last.
    `key`: a field of the input, or `concurrency_key` (default: the tenant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=200)
    period_seconds: float = Field(gt=0, le=86_400)


class TypeRates(BaseModel):
    """A task type's rate per (tenant, key), and what happens over it: `reject` (429)
    or `defer` (accepted, started when the rate allows, at most `max_defer_seconds` on);
    and its debounce, if any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: Rate | None = None
    over_limit: OverLimit = "reject"
    debounce: Debounce | None = None


class RateLimitSettings(BaseModel):
    """Unset (the default): no shared rate limit, and no Redis round trip per creation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: Rate | None = None
    key: Rate | None = None
    tenants: dict[str, TenantRates] = Field(default_factory=dict)
    types: dict[str, TypeRates] = Field(default_factory=dict)
    # A deferred start further out than this is refused (429) instead.
    max_defer_seconds: float = Field(default=3600.0, gt=0, le=7 * 86_400)

    @property
    def configured(self) -> bool:
        return bool(self.tenant or self.key or self.tenants or self.types)
