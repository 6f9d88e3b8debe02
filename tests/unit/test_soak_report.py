"""The soak's verdict arithmetic (bench/soak_report.py): slopes and halves of samples."""

from __future__ import annotations

from typing import Any

import pytest

from bench.soak_report import render, series, slope_per_min, summarise


def test_slope_is_per_minute_and_needs_two_distinct_times() -> None:
    assert slope_per_min([(0, 10), (30, 20), (60, 30)]) == pytest.approx(20.0)
    assert slope_per_min([(0, 5)]) is None
    assert slope_per_min([(10, 5), (10, 7)]) is None


def test_a_series_that_fills_then_holds_is_flat_in_its_last_half() -> None:
    samples = [{"t": t, "v": min(t, 100)} for t in range(0, 401, 20)]

    found = series(samples, lambda s: s["v"])

    assert found["first_half_slope_per_min"] > 0
    assert found["last_half_slope_per_min"] == 0
    assert found["last_half_slope_pct_per_min"] == 0
    assert (found["start"], found["end"], found["max"]) == (0, 100, 100)


def _sample(t: float, database: int) -> dict[str, Any]:
    return {
        "t": t,
        "submitted": int(t * 5),
        "open": 3,
        "database_bytes": database,
        "tables": {"events": {"bytes": database // 2, "rows": 10}},
        "api_rss_kib": 100_000,
        "worker_rss_kib": 120_000,
        "redis_used_memory": 1_000_000,
        "redis_stream_length": 5000,
        "load_average": [1.0, 1.0, 1.0],
    }


def test_summary_reports_the_rate_held_and_renders() -> None:
    report = {
        "settings": {"rate": 5.0},
        "submitted": 3000,
        "failed_submits": 0,
        "paused_seconds": 0.0,
        "samples": [_sample(t, 8_000_000 + min(t, 120) * 1000) for t in range(0, 601, 30)],
    }

    summary = summarise(report)
    report["summary"] = summary

    assert summary["submitted_tasks_per_s"] == 5.0
    assert summary["database_bytes"]["last_half_slope_per_min"] == 0
    assert summary["tables_bytes"]["events"]["end"] == 4_060_000
    assert "database_bytes" in render(report)
