"""What a soak's samples say: does each figure stop growing? (bench/soak.py)

For each series the samples are split at half the run: the mean of each half and
the least-squares slope of each half, per minute. Flat means the last half's slope
is small against the series' level (`last_half_slope_pct_per_min`); the first
half holds the filling (until retention starts deleting: `--keep-closed` plus a
pruning round), the last half the steady state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Sample = dict[str, Any]


def slope_per_min(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def halves(samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
    middle = samples[-1]["t"] / 2 if samples else 0
    return [s for s in samples if s["t"] <= middle], [s for s in samples if s["t"] >= middle]


def series(samples: Sequence[Sample], value: Callable[[Sample], float]) -> dict[str, Any]:
    first, last = halves(samples)

    def mean(part: Sequence[Sample]) -> float | None:
        return round(sum(value(s) for s in part) / len(part), 1) if part else None

    def slope(part: Sequence[Sample]) -> float | None:
        found = slope_per_min([(s["t"], value(s)) for s in part])
        return None if found is None else round(found, 1)

    last_mean, last_slope = mean(last), slope(last)
    return {
        "start": value(samples[0]),
        "middle": value(last[0]) if last else None,
        "end": value(samples[-1]),
        "max": max(value(s) for s in samples),
        "first_half_mean": mean(first),
        "last_half_mean": last_mean,
        "first_half_slope_per_min": slope(first),
        "last_half_slope_per_min": last_slope,
        "last_half_slope_pct_per_min": (
            round(100 * last_slope / last_mean, 2) if last_slope is not None and last_mean else None
        ),
    }


def _table(name: str, key: str) -> Callable[[Sample], float]:
    def value(sample: Sample) -> float:
        return float(sample["tables"].get(name, {}).get(key, 0))

    return value


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    samples: list[Sample] = report["samples"]
    if not samples:
        return {}
    seconds = samples[-1]["t"]
    tables = sorted({name for s in samples for name in s["tables"]})
    loads = [s["load_average"][0] for s in samples]
    return {
        "seconds": seconds,
        "submitted_tasks_per_s": round(report["submitted"] / seconds, 2) if seconds else None,
        # Closed by the last sample: submitted then, less those still open.
        "closed_tasks_per_s": (
            round((samples[-1]["submitted"] - samples[-1]["open"]) / seconds, 2)
            if seconds
            else None
        ),
        "rate_wanted_tasks_per_s": report["settings"]["rate"],
        "open_at_end": samples[-1]["open"],
        "load_average_1m": {
            "min": min(loads),
            "mean": round(sum(loads) / len(loads), 2),
            "max": max(loads),
        },
        "database_bytes": series(samples, lambda s: s["database_bytes"]),
        "api_rss_kib": series(samples, lambda s: s["api_rss_kib"]),
        "worker_rss_kib": series(samples, lambda s: s["worker_rss_kib"]),
        "redis_used_memory": series(samples, lambda s: s["redis_used_memory"]),
        "redis_stream_length": series(samples, lambda s: s["redis_stream_length"]),
        "tables_bytes": {name: series(samples, _table(name, "bytes")) for name in tables},
        "tables_rows": {name: series(samples, _table(name, "rows")) for name in tables},
    }


def render(report: dict[str, Any]) -> str:
    summary = report["summary"]
    if not summary:
        return "no samples"
    lines = [
        f"soak: {summary['seconds']:.0f} s, {report['submitted']} tasks submitted"
        f" ({summary['submitted_tasks_per_s']} /s submitted of {summary['rate_wanted_tasks_per_s']}"
        f" wanted, {summary['closed_tasks_per_s']} /s closed"
        f"; paused {report['paused_seconds']} s; {report['failed_submits']} failed),"
        f" load 1m {summary['load_average_1m']}",
        "",
        f"{'series':<28}{'start':>14}{'middle':>14}{'end':>14}"
        f"{'slope/min 1st':>16}{'slope/min 2nd':>16}{'2nd %/min':>10}",
    ]
    rows = [
        (name, summary[name])
        for name in (
            "database_bytes",
            "api_rss_kib",
            "worker_rss_kib",
            "redis_used_memory",
            "redis_stream_length",
        )
    ] + [(f"  {name} bytes", s) for name, s in summary["tables_bytes"].items()]
    for name, s in rows:
        lines.append(
            f"{name:<28}{s['start']:>14,}{s['middle'] or 0:>14,}{s['end']:>14,}"
            f"{s['first_half_slope_per_min'] or 0:>16,.0f}"
            f"{s['last_half_slope_per_min'] or 0:>16,.0f}"
            f"{s['last_half_slope_pct_per_min'] or 0:>10}"
        )
    return "\n".join(lines)
