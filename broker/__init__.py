"""Event transport between processes: `EventBroker` and its implementations."""

from broker.memory import MemoryBroker
from broker.protocol import (
    BrokerError,
    BrokerNotConnectedError,
    BrokerStats,
    BrokerStatus,
    BrokerUnavailableError,
    ConsumeOptions,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    DurableConsumer,
    DurableMessage,
    EventBroker,
    Subscription,
    TrimGap,
    topic_for,
)
from broker.redis import RedisBroker

__all__ = [
    "BrokerError",
    "BrokerNotConnectedError",
    "BrokerStats",
    "BrokerStatus",
    "BrokerUnavailableError",
    "ConsumeOptions",
    "DeadLetter",
    "DeadLetterReason",
    "Delivery",
    "DurableConsumer",
    "DurableMessage",
    "EventBroker",
    "MemoryBroker",
    "RedisBroker",
    "Subscription",
    "TrimGap",
    "topic_for",
]
