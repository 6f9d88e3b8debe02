"""Event transport between processes: `EventBroker` and its implementations."""

from broker.memory import MemoryBroker
from broker.protocol import (
    BrokerError,
    BrokerNotConnectedError,
    BrokerStatus,
    BrokerUnavailableError,
    Delivery,
    EventBroker,
    Subscription,
    topic_for,
)
from broker.redis import RedisBroker

__all__ = [
    "BrokerError",
    "BrokerNotConnectedError",
    "BrokerStatus",
    "BrokerUnavailableError",
    "Delivery",
    "EventBroker",
    "MemoryBroker",
    "RedisBroker",
    "Subscription",
    "topic_for",
]
