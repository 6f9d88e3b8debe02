"""A stream's live subscription, or None while Redis is away (api/streaming.py).

Subscribing waits for the broker's confirmation; when the broker is already down a new
stream waits `SUBSCRIBE_WAIT_WHILE_DOWN` instead of the broker's full subscribe
timeout, and falls back to reading the store (counted, logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.stream_gate import StreamCounters
from broker import BrokerStatus, BrokerUnavailableError, EventBroker, Subscription, topic_for

log = logging.getLogger(__name__)

# While Redis is away: how long a new stream waits for a confirmation before it reads
# the store instead.
SUBSCRIBE_WAIT_WHILE_DOWN = 1.0

Held = tuple[contextlib.AbstractAsyncContextManager[Subscription], Subscription]


async def live_subscription(
    broker: EventBroker, task_id: str, queue_size: int | None, counters: StreamCounters, last: int
) -> Held | None:
    """The entered subscription context (the caller exits it) and its subscription, or
    None when the broker gave no confirmation (`last`: the stream's cursor, for the log)."""
    connected = broker.status() is BrokerStatus.CONNECTED
    entering = broker.subscribe(topic_for(task_id), queue_size=queue_size)
    try:
        if connected:
            subscription = await entering.__aenter__()
        else:
            # Down already: do not keep the client waiting for the broker's full timeout.
            subscribing = entering.__aenter__()
            subscription = await asyncio.wait_for(subscribing, SUBSCRIBE_WAIT_WHILE_DOWN)
    except (BrokerUnavailableError, TimeoutError) as exc:
        counters.store_fallbacks += 1
        log.info(
            "no live subscription; streaming from the store",
            extra={"task_id": task_id, "sequence": last, "error": str(exc) or "timeout"},
        )
        return None
    return entering, subscription
