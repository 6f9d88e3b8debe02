"""How long a broker loop waits before it connects again: doubled, capped, jittered.

Many API processes lose Redis at the same moment; the jitter spreads their
reconnects, the cap bounds the wait once Redis is back, and a connection that
held for longer than the cap starts the next wait small again, while one that
keeps dying right after it opened never becomes a hot loop. Used by the shared
pub/sub reader (broker/redis_pubsub.py) and by the durable consumers
(broker/durable.py), for outages and for trim gaps not healed yet.
"""

from __future__ import annotations

import random

BACKOFF_INITIAL = 0.1
BACKOFF_CAP = 5.0


class ReconnectBackoff:
    def __init__(self, cap: float = BACKOFF_CAP) -> None:
        self.cap = cap
        self.delay = min(BACKOFF_INITIAL, cap)

    def after_failed_connect(self) -> float:
        """The pause after a connect attempt failed; the next one waits twice as long."""
        pause = jittered(self.delay)
        self.delay = min(self.delay * 2, self.cap)
        return pause

    def after_lost(self, connected_for: float) -> float:
        """The pause after a connection that held `connected_for` seconds was lost."""
        stable = connected_for > self.cap
        self.delay = BACKOFF_INITIAL if stable else min(self.delay * 2, self.cap)
        return jittered(self.delay)


def jittered(delay: float) -> float:
    """`delay` shortened by up to half, at random (spreads many processes' retries)."""
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 -- jitter, not cryptography
