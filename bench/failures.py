"""Activity failures seen by a bench worker, so a broken variant fails fast.

A throughput variant's activities never fail when the code is right. When one
does (an `AttributeError` in a bench recorder, say), Temporal retries it for
ever and no workflow completes: without this the bench would wait for
completions that never come. The bench worker counts failed activity attempts
(regular and local) here, and the closed loop gives up on the variant with the
first failure's text once enough attempts failed and nothing completed.
"""

from __future__ import annotations

from typing import Any

from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

# Failed attempts, with no completion in the window, after which a variant is broken.
GIVE_UP_AFTER = 20


class VariantFailedError(RuntimeError):
    """A throughput variant's activities keep failing: its figure would be meaningless."""


class ActivityFailures(Interceptor):
    """Counts failed activity attempts; keeps the first one's text."""

    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Counting(next, self)

    def seen(self, error: BaseException, activity_name: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = f"{activity_name}: {type(error).__name__}: {error}"

    def check(self) -> None:
        """Raise `VariantFailedError` once the variant is clearly broken."""
        if self.count >= GIVE_UP_AFTER:
            raise VariantFailedError(f"{self.count} activity attempts failed, first: {self.first}")


class _Counting(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, failures: ActivityFailures) -> None:
        super().__init__(next)
        self._failures = failures

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except Exception as error:
            self._failures.seen(error, getattr(input.fn, "__name__", "activity"))
            raise
