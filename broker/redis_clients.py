"""The broker's three kinds of Redis connection, and why each is set up as it is.

Each has a name in CLIENT LIST (`<client_name>-…`), so an operator can tell them apart:

- `-publish`: the command pool (PUBLISH + XADD, PING, stream acks and claims).
  It may retry once: a pooled connection that died while idle.
- `-pubsub`: the one pub/sub connection. It must never retry or reconnect behind
  the reader's back — redis-py re-subscribes a reconnected `PubSub` silently,
  which would hide the messages lost in the break.
- `-consume`: one per `consume()` context, for its blocking XREADGROUP.

`RedisBroker` (broker/redis.py) owns and closes them; here is only how each is made,
and how the shared reader (broker/redis_pubsub.py) lets a dead pub/sub connection go.
"""

from __future__ import annotations

from contextlib import suppress

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError


def command_client(url: str, timeout: float, client_name: str) -> Redis:
    """The `-publish` command pool: every command but the pub/sub and the blocking reads."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        client_name=f"{client_name}-publish",
    )


def pubsub_client(url: str, timeout: float, full_name: str) -> Redis:
    """The client of the one pub/sub connection, named `full_name` (`<client_name>-pubsub`)."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # No retry, not even the failure callback: see the module docstring.
        retry=Retry(NoBackoff(), 0, supported_errors=()),
        # redis-py's own health check reads the socket inside subscribe(),
        # racing the reader; the reader's PING probe replaces it.
        health_check_interval=0,
        client_name=full_name,
    )


def consume_client(
    url: str, block_seconds: float, command_timeout: float, client_name: str
) -> Redis:
    """A `-consume` connection for one consumer's blocking XREADGROUP."""
    return Redis.from_url(
        url,
        # A blocked XREADGROUP answers within `block_seconds`; the margin covers the trip.
        socket_timeout=block_seconds + command_timeout + 1.0,
        socket_connect_timeout=command_timeout,
        retry=Retry(NoBackoff(), 1),
        client_name=f"{client_name}-consume",
    )


async def discard_pubsub(pubsub: PubSub) -> None:
    """Close a pub/sub connection that is done with, whatever state it is in."""
    with suppress(RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
