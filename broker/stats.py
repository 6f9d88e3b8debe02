"""`BrokerStats` from the parts every broker is made of."""

from __future__ import annotations

from broker.durable import DurableCounters
from broker.fanout import Fanout
from broker.protocol import BrokerStats


def collect_stats(fanout: Fanout, durable: DurableCounters, *, reconnects: int = 0) -> BrokerStats:
    return BrokerStats(
        topics=fanout.topic_count,
        subscribers=fanout.subscriber_count,
        buffered=fanout.buffered,
        max_buffered=fanout.max_buffered,
        delivered=fanout.delivered,
        dropped=fanout.dropped,
        resyncs=fanout.resyncs,
        reconnects=reconnects,
        consumed=durable.delivered,
        redelivered=durable.redelivered,
        acked=durable.acked,
        invalid=durable.invalid,
        dead_lettered=durable.dead_lettered,
        gone=durable.gone,
        trim_gaps=durable.trim_gaps,
        unhealed_gaps=durable.unhealed_gaps,
    )
