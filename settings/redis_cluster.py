"""Settings of the Redis Cluster broker (docs/scaling.md#redis-cluster): a section of `Settings`.

`redis_cluster=true` puts the event broker on a Redis Cluster (or Valkey in cluster
mode); `redis_url` then names any one node. Single Redis stays the default.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RedisClusterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASKPLANE_", extra="ignore")

    redis_cluster: bool = False
    # The durable stream's partition streams (broker/cluster_streams.py): a fixed number,
    # the same in every process (a task's events go to the partition of its topic), spread
    # over the slots, so over the primaries: 12 gives each of 1, 2, 3, 4, 6 or 12 primaries
    # (slots split evenly, as `redis-cli --cluster create` does) the same number.
    # Changing it moves tasks to other partitions: drain the stream first.
    redis_cluster_partitions: int = Field(default=12, ge=1, le=1024)
    # How often live fan-out re-reads the slot map while anything is subscribed, besides
    # at once on any reader error (a stopped primary breaks no connection; its failover
    # shows only in the map).
    redis_cluster_topology_seconds: float = Field(default=1.0, gt=0)
    # While a primary is unreachable (a failover under way), how often live fan-out re-reads
    # the slot map and a durable consumer retries its reads (jittered down to half): how
    # soon either sees the replica that took over is at most this after Redis promoted it.
    redis_cluster_failover_poll_seconds: float = Field(default=0.2, gt=0, le=5.0)
