"""A bench variant whose activities keep failing is given up on, with the first failure."""

from __future__ import annotations

import pytest

from bench.failures import GIVE_UP_AFTER, ActivityFailures, VariantFailedError


def test_failures_give_up_after_enough_attempts_with_the_first_text() -> None:
    failures = ActivityFailures()
    failures.seen(AttributeError("no progress_rates"), "run_step")
    failures.check()  # one failed attempt is not a broken variant
    for _ in range(GIVE_UP_AFTER - 1):
        failures.seen(RuntimeError("later"), "run_step")
    with pytest.raises(VariantFailedError, match="run_step: AttributeError: no progress_rates"):
        failures.check()
