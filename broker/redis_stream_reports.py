"""What operators read about the durable stream: its dead letters and each group's backlog.

Split from broker/redis_streams.py, which consumes: these are read-only views (for
`RedisBroker.dead_letters` and the worker's backlog metrics) and share none of its state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from broker.protocol import BrokerUnavailableError, DeadLetter, DeadLetterReason, id_key


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


async def read_dead_letters(
    commands: Redis | RedisCluster, dead_key: str, count: int
) -> list[DeadLetter]:
    """The newest `count` dead letters, oldest first."""
    return [letter for _, letter in await read_dead_letter_entries(commands, dead_key, count)]


async def read_dead_letter_entries(
    commands: Redis | RedisCluster, dead_key: str, count: int
) -> list[tuple[str, DeadLetter]]:
    """`read_dead_letters` with each letter's entry id in the dead-letter stream."""
    try:
        entries: Any = await commands.xrevrange(dead_key, count=count)
    except (RedisError, OSError) as exc:
        raise BrokerUnavailableError(f"XREVRANGE {dead_key}: {exc}") from exc
    letters = []
    for entry_id, raw in reversed(entries or []):
        fields = {_text(k): v for k, v in raw.items()}
        letters.append(
            (
                _text(entry_id),
                DeadLetter(
                    message_id=_text(fields.get("message_id")),
                    group=_text(fields.get("group")),
                    consumer=_text(fields.get("consumer")),
                    reason=DeadLetterReason(_text(fields.get("reason"))),
                    error=_text(fields.get("error")),
                    topic=_text(fields.get("topic")) or None,
                    payload=_text(fields.get("payload")),
                    deliveries=int(_text(fields.get("deliveries")) or 0),
                ),
            )
        )
    return letters


@dataclass(frozen=True, slots=True)
class GroupBacklog:
    """How far one consumer group is behind the durable stream."""

    group: str
    pending: int  # delivered to a consumer, not yet acknowledged
    lag: int | None  # entries not yet delivered (Redis >= 7 reports it; None before)
    lag_seconds: float  # age of the oldest entry not yet delivered (0 when none)
    behind_trim: bool  # its position is older than the stream's first entry: trimmed unread
    partition: str | None = None  # the partition stream (a cluster's; None: the one stream)


@dataclass(frozen=True, slots=True)
class StreamBacklog:
    length: int
    groups: list[GroupBacklog]
    # A cluster's partition streams: (partition, length) each; `length` is their sum.
    partition_lengths: tuple[tuple[str, int], ...] = ()


async def read_backlog(
    commands: Redis | RedisCluster, key: str, partition: str | None = None
) -> StreamBacklog:
    """The stream's length and each group's backlog: a few cheap commands per group
    (XLEN, XINFO GROUPS, and XRANGE COUNT 1 for the oldest undelivered entry)."""
    length = int(await commands.xlen(key))
    try:
        infos: list[dict[str, Any]] = await commands.xinfo_groups(key)
    except ResponseError:  # no stream yet
        return StreamBacklog(length, [])
    first = await commands.xrange(key, count=1)
    first_id = _text(first[0][0]) if first else None
    now_ms = time.time() * 1000
    groups = []
    for info in infos:
        last = _text(info.get("last-delivered-id"))
        oldest = await commands.xrange(key, min=f"({last}", count=1)
        lag_seconds = max(0.0, now_ms - id_key(_text(oldest[0][0]))[0]) / 1000 if oldest else 0.0
        lag = info.get("lag")
        groups.append(
            GroupBacklog(
                group=_text(info.get("name")),
                pending=int(info.get("pending", 0)),
                lag=int(lag) if isinstance(lag, int) else None,
                lag_seconds=lag_seconds,
                behind_trim=first_id is not None
                and last not in ("", "0-0")
                and id_key(last) < id_key(first_id),
                partition=partition,
            )
        )
    return StreamBacklog(length, groups)
