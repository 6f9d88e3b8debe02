"""The bulk request's filter: what it accepts, and what it refuses before anything runs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.bulk import BulkCounts, BulkFilter
from schemas.tasks import TaskStatus


def test_one_status_is_a_list_of_one() -> None:
    assert BulkFilter.model_validate({"status": "running"}).status == [TaskStatus.RUNNING]
    both = BulkFilter.model_validate({"status": ["running", "paused"]})
    assert both.status == [TaskStatus.RUNNING, TaskStatus.PAUSED]


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"status": []},
        {"status": "asleep"},
        {"type": ""},
        {"colour": "red"},
        {"created_after": "2026-01-01T00:00:00"},
        {"created_after": "2026-01-02T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"},
        {"created_after": "2026-01-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"},
        {"concurrency_key": "a\x00b"},
        {"created_after": 0},
        {"created_before": 1.5},
    ],
)
def test_refused(given: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BulkFilter.model_validate(given)


def test_pending_is_what_has_no_outcome_yet() -> None:
    assert BulkCounts(matched=10, done=4, skipped=3, failed=1).pending == 2
