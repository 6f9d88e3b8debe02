"""Which topics the shared pub/sub connection should have, and which Redis confirmed.

The bookkeeping of `SharedPubSub` (broker/redis_pubsub.py), apart from its I/O: per
topic, an event set once Redis confirmed the subscription on the current connection,
the SUBSCRIBEs sent and not yet answered, whether its subscribers are owed a resync
notice, and the SUBSCRIBE/UNSUBSCRIBE commands asked for and not yet sent. No awaits
and no Redis here: `SharedPubSub` calls these under its own lock where it must.

Why confirmations are counted: redis-py's `subscribe()` only sends the command.
Redis answers every SUBSCRIBE of a channel, in order, even a redundant one, so the
count of SUBSCRIBEs sent for a topic on the current connection returns to zero
exactly when the latest one is answered. A confirmation left over from an earlier,
abandoned subscription can thus never confirm a newer one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container


class TopicConfirmations:
    def __init__(self) -> None:
        # Topics that have subscribers → set once Redis confirmed them on the current connection.
        self._confirmed: dict[str, asyncio.Event] = {}
        # SUBSCRIBEs sent on the current connection and not yet answered, per topic.
        self._outstanding: dict[str, int] = {}
        # Topics whose subscribers get a resync notice once their re-subscription is confirmed.
        self._resync_on_confirm: set[str] = set()
        # Commands asked for and not yet sent, in the order asked (dicts keep it).
        self._subscribe_pending: dict[str, None] = {}
        self._unsubscribe_pending: dict[str, None] = {}

    def want(self, topic: str, *, resync: bool = False) -> None:
        """The topic's first subscriber arrived: it waits for a SUBSCRIBE's confirmation.

        `resync`: its subscribers are owed a resync notice once confirmed (a topic that
        moved here from another connection, as the cluster's live fan-out moves them).
        """
        self._confirmed[topic] = asyncio.Event()
        self._subscribe_pending[topic] = None
        if resync:
            self._resync_on_confirm.add(topic)

    def __contains__(self, topic: object) -> bool:
        """Whether `topic` is wanted on this connection (it has subscribers here)."""
        return topic in self._confirmed

    def wanted(self) -> list[str]:
        return list(self._confirmed)

    def confirmation(self, topic: str) -> asyncio.Event:
        """Set once Redis confirmed `topic` on the current connection (or on stop)."""
        return self._confirmed[topic]

    def is_confirmed(self, topic: str) -> bool:
        confirmed = self._confirmed.get(topic)
        return confirmed is not None and confirmed.is_set()

    def drop(self, topic: str) -> None:
        """The topic's last subscriber left: nobody waits for it any more."""
        del self._confirmed[topic]
        self._resync_on_confirm.discard(topic)

    def ask_unsubscribe(self, topic: str) -> None:
        self._subscribe_pending.pop(topic, None)
        self._unsubscribe_pending[topic] = None

    @property
    def commands_pending(self) -> bool:
        return bool(self._subscribe_pending or self._unsubscribe_pending)

    def take_commands(self, subscribed: Container[str]) -> tuple[list[str], list[str]]:
        """(topics to leave, topics to join) asked for since the last call, and forget them.

        A topic left and taken again since is in both sets: it is skipped as a leave (it
        still has subscribers, `subscribed`) and joined again; Redis answers that redundant
        SUBSCRIBE too, so its count stays exact.
        """
        leave = [t for t in self._unsubscribe_pending if t not in subscribed]
        join = [t for t in self._subscribe_pending if t in self._confirmed]
        self._unsubscribe_pending.clear()
        self._subscribe_pending.clear()
        return leave, join

    def count_sent(self, topics: list[str]) -> None:
        """One more SUBSCRIBE of each of `topics` is (about to be) on the wire."""
        for topic in topics:
            self._outstanding[topic] = self._outstanding.get(topic, 0) + 1

    def new_connection(self) -> list[str]:
        """A fresh connection has nothing outstanding; these topics are to subscribe on it."""
        self._outstanding.clear()
        return list(self._confirmed)

    def connection_lost(self) -> None:
        """Every topic waits for its new confirmation, then its subscribers get a resync."""
        for topic, event in self._confirmed.items():
            event.clear()
            self._resync_on_confirm.add(topic)

    def on_confirmed(self, topic: str) -> bool:
        """Redis answered a SUBSCRIBE of `topic`; True when its subscribers are owed a
        resync notice now (their re-subscription after a reconnect is confirmed)."""
        remaining = self._outstanding.pop(topic, 0) - 1
        if remaining > 0:
            self._outstanding[topic] = remaining
            return False
        event = self._confirmed.get(topic)
        if event is None:
            return False  # its last subscriber already left; an UNSUBSCRIBE follows
        event.set()
        if topic in self._resync_on_confirm:
            self._resync_on_confirm.discard(topic)
            return True
        return False

    def release_waiters(self) -> None:
        """On stop: wake every waiter (they see the broker stopped and raise)."""
        for event in self._confirmed.values():
            event.set()
