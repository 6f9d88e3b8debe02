"""Start rates shared by every API process: per tenant, per key, per task type.

`POST /tasks` asks `StartRates.admit` before anything else is written. The rules
that apply to (tenant, key, type) — see settings/rate_limits.py — are checked
together by one GCRA Lua script in Redis (broker/rate_script.py), so N API
processes behind a load balancer share one limit and one clock (Redis's).

Answers, with the headers of draft-ietf-httpapi-ratelimit-headers-10
(`RateLimit-Policy` lists every rule that applied, `RateLimit` the tightest one):

- admitted: 202 as before, with the headers;
- over the limit: 429 problem+json with `Retry-After` and the headers;
- over the limit of a type whose rule says `defer`: 202, and the workflow starts
  when the rate allows (Temporal's `start_delay`), said by `Taskplane-Start-Delay`.

Redis unreachable: the creation fails with 503 + Retry-After (fail closed, as the
problem handlers answer every Redis error); a limit that silently stopped holding
during an outage would be worse for the tenants it protects.

The per-process bucket (`api.limits.check_creation_rate`,
`TASKPLANE_LIMIT_TASK_CREATE_*`) stays in front as a flood guard of one process:
it costs no round trip and refuses before this does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Annotated

from fastapi import Depends, Request, Response
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from api.models import CreateTaskRequest
from api.problems import ProblemError
from broker.rate_script import GcraDecision, GcraRule, GcraScript
from schemas.plugins import TaskTypePlugin
from settings import Settings
from settings.rate_limits import OverLimit, Rate, RateLimitSettings, TypeRates
from store.tenants import TaskOwners
from telemetry.metrics import Metrics

log = logging.getLogger(__name__)

START_DELAY_HEADER = "Taskplane-Start-Delay"

# What task types declared at registration (`TaskTypePlugin.rate_limit`); the setting's
# `types` replaces a type's entry.
_TYPE_RATES: dict[str, TypeRates] = {}


def register_type_rates(task_type: str, rates: TypeRates) -> None:
    _TYPE_RATES[task_type] = rates


def register_plugin_rates(plugins: Sequence[TaskTypePlugin]) -> None:
    for plugin in plugins:
        if plugin.rate_limit is not None:
            register_type_rates(plugin.name, TypeRates.model_validate(plugin.rate_limit))


def type_rates(config: RateLimitSettings, task_type: str) -> TypeRates | None:
    """Settings first (an operator's word), then the type's own registration."""
    return config.types.get(task_type) or _TYPE_RATES.get(task_type)


@dataclass(frozen=True, slots=True)
class NamedRule:
    name: str  # e.g. "tenant-s": the policy name in the headers
    quota: int
    window: int
    rule: GcraRule


@dataclass(frozen=True, slots=True)
class Admission:
    """What the limiter decided for one creation (admitted: else `admit` raised)."""

    delay_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    decided_at_ms: float = 0.0  # Redis's clock; 0 when no rule applied
    rule: str | None = None  # the rule that deferred the start (its policy name)


NO_LIMIT = Admission()


def _tag(tenant: str) -> str:
    # One hash slot per tenant on a Redis Cluster: every key of one call carries it.
    return "{" + tenant.replace("{", "%7B").replace("}", "%7D") + "}"


def _named(scope: str, key: str, rate: Rate) -> list[NamedRule]:
    return [
        NamedRule(f"{scope}-{suffix}", quota, window, GcraRule(f"{key}:{suffix}", interval, burst))
        for suffix, interval, burst, quota, window in rate.rules()
    ]


def policy_header(rules: list[NamedRule]) -> str:
    return ", ".join(f'"{r.name}";q={r.quota};w={r.window}' for r in rules)


def limit_header(rule: NamedRule, remaining: int, reset_ms: float) -> str:
    return f'"{rule.name}";r={remaining};t={math.ceil(reset_ms / 1000)}'


class StartRates:
    """The shared limiter of one API process; its Redis client opens on first use,
    so an API with no `TASKPLANE_RATE_LIMITS` never connects for it."""

    def __init__(self, config: RateLimitSettings, redis_url: str | None, *, timeout: float) -> None:
        self.config = config
        self._redis_url = redis_url
        self._timeout = timeout
        self._redis: Redis | None = None
        self._script: GcraScript | None = None
        self.admitted = 0
        self.deferred = 0
        self.refused = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> StartRates:
        return cls(
            settings.rate_limits, settings.redis_url, timeout=settings.publish_timeout_seconds
        )

    def _gcra(self) -> GcraScript:
        if self._script is None:
            if not self._redis_url:
                raise RuntimeError("TASKPLANE_RATE_LIMITS needs TASKPLANE_REDIS_URL")
            self._redis = Redis.from_url(
                self._redis_url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                client_name="taskplane-api-rates",
            )
            self._script = GcraScript(self._redis)
        return self._script

    async def __aenter__(self) -> StartRates:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        redis, self._redis, self._script = self._redis, None, None
        if redis is not None:
            await redis.aclose()

    def rules_for(self, tenant: str, key: str, task_type: str) -> tuple[list[NamedRule], OverLimit]:
        config = self.config
        override = config.tenants.get(tenant)
        tenant_rate = (override.tenant if override else None) or config.tenant
        key_rate = (override.key if override else None) or config.key
        typed = type_rates(config, task_type)
        base = f"tp:rate:{_tag(tenant)}"
        rules: list[NamedRule] = []
        if tenant_rate is not None:
            rules += _named("tenant", f"{base}:t", tenant_rate)
        if key_rate is not None:
            rules += _named("key", f"{base}:k:{key}", key_rate)
        if typed is not None and typed.rate is not None:
            rules += _named("type", f"{base}:y:{task_type}:{key}", typed.rate)
        return rules, typed.over_limit if typed is not None else "reject"

    async def admit(self, tenant: str, key: str | None, task_type: str) -> Admission:
        """Admitted (maybe deferred), or a 429 problem; `key` None: the tenant's own key."""
        rules, over_limit = self.rules_for(tenant, key if key is not None else tenant, task_type)
        if not rules:
            return NO_LIMIT
        decision = await self._gcra().take(
            [named.rule for named in rules],
            mode=over_limit,
            max_delay_ms=self.config.max_defer_seconds * 1000,
        )
        headers = {
            "RateLimit-Policy": policy_header(rules),
            "RateLimit": limit_header(rules[decision.rule], decision.remaining, decision.reset_ms),
        }
        if not decision.admitted:
            self.refused += 1
            raise self._refusal(tenant, key, rules[decision.rule], decision, headers)
        delay = decision.delay_ms / 1000
        rule = rules[decision.rule].name if delay > 0 else None
        if delay > 0:
            self.deferred += 1
            headers[START_DELAY_HEADER] = f"{delay:.3f}"
            log.info(
                "task start deferred by the rate limit",
                extra={"tenant": tenant, "concurrency_key": key, "delay_seconds": delay},
            )
        else:
            self.admitted += 1
        return Admission(
            delay_seconds=delay, headers=headers, decided_at_ms=decision.at_ms, rule=rule
        )

    async def admit_new(
        self,
        pool: AsyncConnectionPool,
        task_id: str,
        idempotency_key: str | None,
        tenant: str,
        body: CreateTaskRequest,
    ) -> Admission:
        """`admit`, but for a request whose Idempotency-Key already named a task: that
        one is answered as before (200 or 422), taking nothing from any bucket."""
        if not self.rules_for(tenant, body.concurrency_key or tenant, body.type)[0]:
            return NO_LIMIT
        if idempotency_key is not None and await TaskOwners(pool).claimed(task_id):
            return NO_LIMIT
        return await self.admit(tenant, body.concurrency_key, body.type)

    def _refusal(
        self,
        tenant: str,
        key: str | None,
        rule: NamedRule,
        decision: GcraDecision,
        headers: dict[str, str],
    ) -> ProblemError:
        retry_after = max(1, math.ceil(decision.delay_ms / 1000))
        log.info(
            "task creation refused by the rate limit",
            extra={"tenant": tenant, "concurrency_key": key, "rule": rule.name},
        )
        scope = "tenant" if rule.name.startswith("tenant") else f"key {key or tenant!r}"
        return ProblemError(
            429,
            f"{scope} of tenant {tenant!r} is over its start rate ({rule.name}: {rule.quota}"
            f" per {rule.window} s, TASKPLANE_RATE_LIMITS); retry after the Retry-After seconds",
            headers={"Retry-After": str(retry_after), **headers},
            rate_limit=rule.name,
        )


def register_rate_metrics(metrics: Metrics, rates: StartRates) -> None:
    """`taskplane_task_starts_total{decision=admitted|deferred|refused}` of this process."""
    metrics.counters(
        "taskplane_task_starts",
        "creations decided by the shared start rates (TASKPLANE_RATE_LIMITS)",
        lambda: [
            (float(rates.admitted), {"decision": "admitted"}),
            (float(rates.deferred), {"decision": "deferred"}),
            (float(rates.refused), {"decision": "refused"}),
        ],
    )


async def get_start_rates(request: Request) -> StartRates:
    rates: StartRates = request.app.state.start_rates
    return rates


StartRatesDep = Annotated[StartRates, Depends(get_start_rates)]


def answer_headers(response: Response, admission: Admission) -> None:
    for name, value in admission.headers.items():
        response.headers[name] = value
