"""When to try a webhook delivery again, and when to give up: plain rules, no I/O.

Anything but a 2xx is retried with exponential back-off and jitter until
`webhook_max_attempts` attempts, or until the next retry would pass
`webhook_max_age_seconds` after the delivery was made; then it is `failed` and the
task's next event goes. A 410 Gone disables the endpoint (`webhook_disable_on_gone`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from settings import Settings

RETRY_FACTOR = 4.0


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    timeout_seconds: float
    max_attempts: int
    max_age_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float
    lease_seconds: float
    poll_seconds: float
    batch_size: int
    allow_private_networks: bool
    disable_on_gone: bool

    def __post_init__(self) -> None:
        # A send that outlives its lease may be sent again by another worker meanwhile.
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError("webhook_lease_seconds must exceed webhook_timeout_seconds")

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            max_attempts=settings.webhook_max_attempts,
            max_age_seconds=settings.webhook_max_age_seconds,
            retry_base_seconds=settings.webhook_retry_base_seconds,
            retry_max_seconds=settings.webhook_retry_max_seconds,
            lease_seconds=settings.webhook_lease_seconds,
            poll_seconds=settings.webhook_poll_seconds,
            batch_size=settings.webhook_batch_size,
            allow_private_networks=settings.webhook_allow_private_networks,
            disable_on_gone=settings.webhook_disable_on_gone,
        )


def retry_delay(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds before the attempt after `attempt`: base * 4^(attempt-1), capped, jittered.

    `jitter` in [0, 1) spreads retries over the upper half of the interval, so the
    deliveries of an endpoint that came back do not all retry in the same instant.
    """
    return min(cap, base * RETRY_FACTOR ** (attempt - 1)) * (0.5 + jitter / 2)


@dataclass(frozen=True, slots=True)
class AfterFailure:
    """What to do with a delivery whose attempt got no 2xx."""

    action: Literal["retry", "give_up", "disable"]
    delay_seconds: float = 0.0  # for "retry"


def after_failure(
    policy: DeliveryPolicy,
    *,
    attempt: int,
    status_code: int | None,
    age_seconds: float,
    jitter: float,
) -> AfterFailure:
    """`attempt` (from 1) failed with `status_code` (None: no answer), `age_seconds`
    after the delivery was made."""
    if status_code == 410 and policy.disable_on_gone:
        return AfterFailure("disable")
    delay = retry_delay(
        attempt, base=policy.retry_base_seconds, cap=policy.retry_max_seconds, jitter=jitter
    )
    if attempt >= policy.max_attempts or age_seconds + delay > policy.max_age_seconds:
        return AfterFailure("give_up")
    return AfterFailure("retry", delay)
