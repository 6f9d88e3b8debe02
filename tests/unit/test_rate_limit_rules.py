"""Which rules apply to a creation, and how the headers name them (no Redis needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError

from api.debounce import debounce_key
from api.models import CreateTaskRequest
from api.rate_limits import StartRates, limit_header, policy_header, register_plugin_rates
from schemas.plugins import TaskTypePlugin
from settings import Settings
from settings.rate_limits import Debounce, Rate, RateLimitSettings, TypeRates


def test_settings_read_the_json_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TASKPLANE_RATE_LIMITS",
        '{"tenant": {"per_second": 5, "burst": 10, "per_minute": 100},'
        ' "tenants": {"acme": {"key": {"per_minute": 6}}}}',
    )
    config = Settings().rate_limits
    assert config.tenant == Rate(per_second=5, burst=10, per_minute=100)
    assert config.tenants["acme"].key == Rate(per_minute=6)
    assert config.configured
    assert not Settings(rate_limits=RateLimitSettings()).rate_limits.configured


@pytest.mark.parametrize(
    "bad", [{}, {"burst": 3, "per_minute": 5}, {"per_second": 0}, {"per_second": 1, "x": 1}]
)
def test_bad_rates_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        Rate.model_validate(bad)


def test_rules_per_tenant_key_and_type() -> None:
    config = RateLimitSettings(
        tenant=Rate(per_second=10),
        tenants={"acme": {"tenant": Rate(per_minute=60), "key": Rate(per_second=2, burst=4)}},
        types={"report": TypeRates(rate=Rate(per_minute=6), over_limit="defer")},
    )
    rates = StartRates(config, None, timeout=1)
    rules, mode = rates.rules_for("acme", "customer-7", "report")
    assert [r.name for r in rules] == ["tenant-m", "key-s", "type-m"]
    assert mode == "defer"
    # Every key of one call shares the tenant's hash tag (one slot on a cluster).
    assert all(r.rule.key.startswith("tp:rate:{acme}:") for r in rules)
    assert rules[1].rule.key == "tp:rate:{acme}:k:customer-7:s"
    assert rules[1].rule.interval_ms == 500
    assert rules[1].rule.burst == 4
    assert policy_header(rules) == '"tenant-m";q=60;w=60, "key-s";q=2;w=1, "type-m";q=6;w=60'
    assert limit_header(rules[2], 0, 9_100) == '"type-m";r=0;t=10'
    other, mode = rates.rules_for("other", "other", "demo.pipeline")
    assert [r.name for r in other] == ["tenant-s"]
    assert mode == "reject"
    assert StartRates(RateLimitSettings(), None, timeout=1).rules_for("a", "a", "b")[0] == []


def test_a_type_registration_applies_unless_settings_say_otherwise() -> None:
    plugin = TaskTypePlugin(
        name="test.registered",
        input_model=Rate,
        runner=lambda *_: None,
        rate_limit={"rate": {"per_second": 1}},
    )
    register_plugin_rates([plugin])
    rates = StartRates(RateLimitSettings(), None, timeout=1)
    assert [r.name for r in rates.rules_for("t", "t", "test.registered")[0]] == ["type-s"]
    overridden = RateLimitSettings(types={"test.registered": TypeRates(rate=Rate(per_minute=1))})
    named = StartRates(overridden, None, timeout=1).rules_for("t", "t", "test.registered")[0]
    assert [r.name for r in named] == ["type-m"]


def test_tenant_names_cannot_break_the_hash_tag() -> None:
    config = RateLimitSettings(tenant=Rate(per_second=1))
    rules, _ = StartRates(config, None, timeout=1).rules_for("a}b{c", "k", "t")
    assert rules[0].rule.key.startswith("tp:rate:{a%7Db%7Bc}:")


def test_the_debounce_key_is_an_input_field_or_the_concurrency_key() -> None:
    by_field = Debounce(key="index", period_seconds=1)
    body = CreateTaskRequest(type="t", input={"index": "docs"}, concurrency_key="c")
    assert debounce_key(by_field, "acme", body, {"index": "docs"}) == '"docs"'
    assert debounce_key(by_field, "acme", body, {"index": {"b": 1, "a": 2}}) == '{"a": 2, "b": 1}'
    assert debounce_key(by_field, "acme", body, {}) == "null"
    by_key = Debounce(key="concurrency_key", period_seconds=1)
    assert debounce_key(by_key, "acme", body, {}) == "c"
    assert debounce_key(by_key, "acme", CreateTaskRequest(type="t"), {}) == "acme"


async def test_an_unreachable_redis_fails_the_creation_closed() -> None:
    config = RateLimitSettings(tenant=Rate(per_second=1))
    async with StartRates(config, "redis://127.0.0.1:1/0", timeout=0.5) as rates:
        with pytest.raises(RedisConnectionError):  # answered 503 + Retry-After (api.problems)
            await rates.admit("acme", None, "demo.pipeline")
        assert rates.refused == 0
