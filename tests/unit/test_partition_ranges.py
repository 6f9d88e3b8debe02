"""Which partitions of `events` to make (store/partitions.py): aligned, never overlapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.partitions import Partition, bucket, missing_ranges

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
NOON = datetime(2026, 12, 4, 12, tzinfo=UTC)
MIDNIGHT = datetime(2026, 12, 4, tzinfo=UTC)


def test_ranges_are_aligned_and_cover_now_to_ahead() -> None:
    assert bucket(NOON, DAY) == MIDNIGHT
    assert missing_ranges([], NOON, DAY, 2 * DAY) == [
        (MIDNIGHT, MIDNIGHT + DAY),
        (MIDNIGHT + DAY, MIDNIGHT + 2 * DAY),
        (MIDNIGHT + 2 * DAY, MIDNIGHT + 3 * DAY),
    ]


def test_existing_partitions_are_skipped() -> None:
    today = Partition("events_today", MIDNIGHT, MIDNIGHT + DAY)
    assert missing_ranges([today], NOON, DAY, DAY) == [(MIDNIGHT + DAY, MIDNIGHT + 2 * DAY)]


def test_a_new_width_is_clipped_to_fit_the_partitions_of_the_old_one() -> None:
    old = [
        Partition("a", MIDNIGHT, MIDNIGHT + DAY),
        Partition("b", MIDNIGHT + 2 * DAY, MIDNIGHT + 3 * DAY),
    ]
    # Hours after days: from tomorrow, where the old ones end.
    hourly = missing_ranges(old, NOON, HOUR, DAY + 2 * HOUR)
    assert hourly[0] == (MIDNIGHT + DAY, MIDNIGHT + DAY + HOUR)
    assert len(hourly) == 14  # tomorrow 00:00 to 14:00 (NOON + 26 h)
    # Weeks after days (aligned on 2000-01-01, a Saturday): this week's start up to the
    # old ones, the gap between them, then on from the last to the week's end.
    weekly = missing_ranges(old, NOON, 7 * DAY, 3 * DAY)
    assert weekly == [
        (MIDNIGHT - 6 * DAY, MIDNIGHT),
        (MIDNIGHT + DAY, MIDNIGHT + 2 * DAY),
        (MIDNIGHT + 3 * DAY, MIDNIGHT + 8 * DAY),
    ]
    assert all(lo < hi for lo, hi in weekly)
