"""`taskplane prune`: its duration argument and its table (the pruning itself runs on a
real Postgres in tests/integration/test_retention.py)."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from cli.main import build_parser
from cli.prune import parse_duration, render
from store.retention import TABLES, PruneCounts


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("45s", 45.0),
        ("15m", 900.0),
        ("12h", 43_200.0),
        ("30d", 2_592_000.0),
        ("2w", 1_209_600.0),
        ("1d12h", 129_600.0),
        ("0.5h", 1800.0),
        ("0", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "30x", "30d junk", "-5", "1h-2m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_the_command_needs_its_cutoff() -> None:
    args = build_parser().parse_args(["prune", "--closed-before", "30d", "--dry-run"])
    assert (args.closed_before, args.dry_run) == (2_592_000.0, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["prune"])


def test_the_table_has_every_table_zeros_included() -> None:
    text = render(PruneCounts(rows=Counter({"tasks": 2, "events": 16})), dry_run=True)
    lines = text.splitlines()
    assert lines[0].split() == ["table", "would", "delete"]
    rows = dict(line.split() for line in lines[1 : 1 + len(TABLES)])
    assert rows == {table: {"tasks": "2", "events": "16"}.get(table, "0") for table in TABLES}
