"""The Redis Cluster failover poll: one setting, read by the broker factory, reaching the
watchdog, redis-py's topology refresh and the durable consumer's retry cap."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from broker.backoff import BACKOFF_CAP, BACKOFF_INITIAL, ReconnectBackoff
from broker.factory import make_broker
from broker.redis_cluster import RedisClusterBroker
from settings import Settings
from settings.redis_cluster import RedisClusterSettings


def test_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RedisClusterSettings().redis_cluster_failover_poll_seconds == 0.2
    monkeypatch.setenv("TASKPLANE_REDIS_CLUSTER_FAILOVER_POLL_SECONDS", "0.5")
    assert RedisClusterSettings().redis_cluster_failover_poll_seconds == 0.5
    monkeypatch.setenv("TASKPLANE_REDIS_CLUSTER_FAILOVER_POLL_SECONDS", "0")
    with pytest.raises(ValidationError):
        RedisClusterSettings()


def test_backoff_doubles_up_to_its_cap() -> None:
    default = ReconnectBackoff()
    short = ReconnectBackoff(0.2)
    for _ in range(10):
        assert short.after_failed_connect() <= 0.2
        default.after_failed_connect()
    assert short.delay == 0.2
    assert default.delay == BACKOFF_CAP
    assert ReconnectBackoff(0.05).delay == 0.05 < BACKOFF_INITIAL


async def test_the_factory_passes_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKPLANE_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("TASKPLANE_REDIS_CLUSTER", "true")
    monkeypatch.setenv("TASKPLANE_REDIS_CLUSTER_FAILOVER_POLL_SECONDS", "0.3")
    broker = make_broker(Settings(), client_name="t")
    assert isinstance(broker, RedisClusterBroker)
    assert broker.failover_poll == 0.3
