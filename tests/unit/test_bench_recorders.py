"""The bench's `NoIoRecorder` keeps up with what the activities read from a recorder."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, cast

from activities.recorder import EventRecorder, NewEvent
from bench.recorders import NoIoRecorder


def _public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_no_io_recorder_overrides_every_public_method() -> None:
    # A method inherited from EventRecorder would reach for the store it never set.
    for name in _public_methods(EventRecorder):
        assert getattr(NoIoRecorder, name) is not getattr(EventRecorder, name), name


def test_no_io_recorder_has_every_public_attribute() -> None:
    nothing = cast(Any, object())
    production = EventRecorder(nothing, nothing, nothing)
    public = {name for name in vars(production) if not name.startswith("_")}
    assert public <= set(vars(NoIoRecorder()))


def test_no_io_recorder_records_without_io() -> None:
    recorder = NoIoRecorder()
    events = [
        NewEvent(f"e{i}", "task.step.started.v1", {"index": i, "name": "s", "attempt": 1})
        for i in (1, 2)
    ]
    results = asyncio.run(recorder.record_many("t", events))
    assert [r.duplicate for r in results] == [False, False]
    assert recorder.progress_rates is None
