"""Percentiles and medians, the only statistics the bench reports.

Medians, because the machine is shared: one noisy neighbour in one round moves
a mean, not a median.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """p50/p95/p99/max of durations given in seconds, reported in milliseconds."""
    ms = [value * 1000 for value in seconds]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3) if ms else math.nan,
    }


# Where `distribution_ms` samples a distribution: every half percent, then the tail finer.
DISTRIBUTION_PERCENTS = (
    [q / 2 for q in range(1, 198)] + [99.0 + q / 10 for q in range(0, 10)] + [99.95, 100.0]
)


def distribution_ms(seconds: Sequence[float]) -> list[float]:
    """The latency (ms) at each of `DISTRIBUTION_PERCENTS`: enough to draw a CDF and its tail."""
    ms = [value * 1000 for value in seconds]
    if not ms:
        return []
    return [round(percentile(ms, q), 3) for q in DISTRIBUTION_PERCENTS]


def epoch(rfc3339: str) -> float:
    """An envelope's `time` (RFC 3339, `Z`) as seconds since the epoch, like `time.time()`."""
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
