"""The pure parts of schedules: ids derived per tenant, task ids derived per fire, and
the CLI's durations."""

from __future__ import annotations

import argparse
import uuid

import pytest

from cli.schedules import parse_duration
from schemas.schedules import action_workflow_id, scheduled_task_id, temporal_schedule_id


def test_two_tenants_with_one_id_have_two_temporal_schedules() -> None:
    a = temporal_schedule_id("tenant_a", "nightly")
    assert a == temporal_schedule_id("tenant_a", "nightly")
    assert a != temporal_schedule_id("tenant_b", "nightly")
    # No tenant/id split makes another pair's schedule.
    assert temporal_schedule_id("a", "b:c") != temporal_schedule_id("a:b", "c")
    assert a.startswith("taskplane-schedule-")


def test_each_fire_has_its_own_task_id_a_uuid_derived_from_its_workflow_id() -> None:
    base = action_workflow_id(temporal_schedule_id("t", "s"))
    assert base.startswith("scheduled-")
    assert not base.startswith("task-")  # never taken for a task's workflow
    first = scheduled_task_id(f"{base}-2026-12-04T10:00:00Z", "run-1")
    second = scheduled_task_id(f"{base}-2026-12-04T10:00:02Z", "run-2")
    assert first != second
    assert str(uuid.UUID(first)) == first
    assert scheduled_task_id(f"{base}-2026-12-04T10:00:00Z", "run-1") == first
    # Two fires in one second share a workflow id, never a task.
    assert scheduled_task_id(f"{base}-2026-12-04T10:00:00Z", "run-3") != first


@pytest.mark.parametrize(
    ("raw", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400)]
)
def test_durations(raw: str, seconds: int) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["", "5x", "-5", "1.5h", "m"])
def test_bad_durations(raw: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(raw)
