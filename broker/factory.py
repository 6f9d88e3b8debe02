"""The process's broker, as the settings choose: one Redis (the default) or a Redis Cluster."""

from __future__ import annotations

from broker.redis import RedisBroker
from broker.redis_cluster import RedisClusterBroker
from settings import Settings

RedisFamilyBroker = RedisBroker | RedisClusterBroker


def make_broker(settings: Settings, *, client_name: str) -> RedisFamilyBroker:
    """A broker for `TASKPLANE_REDIS_URL`; with `TASKPLANE_REDIS_CLUSTER=true`, on the cluster
    that URL's node belongs to. `client_name` is the CLIENT SETNAME prefix of its connections."""
    url = settings.require_redis_url()
    if settings.redis_cluster:
        return RedisClusterBroker(
            url,
            stream_maxlen=settings.broker_stream_maxlen,
            partitions=settings.redis_cluster_partitions,
            publish_timeout=settings.publish_timeout_seconds,
            topology_interval=settings.redis_cluster_topology_seconds,
            failover_poll=settings.redis_cluster_failover_poll_seconds,
            client_name=client_name,
        )
    return RedisBroker(
        url,
        stream_maxlen=settings.broker_stream_maxlen,
        publish_timeout=settings.publish_timeout_seconds,
        client_name=client_name,
    )
