"""The bench's `NoIoRecorder` and `FloorRecorder` keep up with what the activities read
from a recorder."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, cast

from activities.recorder import EventRecorder, NewEvent
from bench.event_floor import FloorRecorder
from bench.recorders import NoIoRecorder


def _public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_stand_ins_override_every_public_method() -> None:
    # A method inherited from EventRecorder would reach for the store it never set.
    for stand_in in (NoIoRecorder, FloorRecorder):
        for name in _public_methods(EventRecorder):
            assert getattr(stand_in, name) is not getattr(EventRecorder, name), (stand_in, name)


def test_stand_ins_have_every_public_attribute() -> None:
    nothing = cast(Any, object())
    production = EventRecorder(nothing, nothing, nothing)
    public = {name for name in vars(production) if not name.startswith("_")}
    assert public <= set(vars(NoIoRecorder()))
    floor = FloorRecorder(nothing, "redis://127.0.0.1:1/0", stream_key="s")  # no I/O until used
    assert public <= set(vars(floor))


def test_no_io_recorder_records_without_io() -> None:
    recorder = NoIoRecorder()
    events = [
        NewEvent(f"e{i}", "task.step.started.v1", {"index": i, "name": "s", "attempt": 1})
        for i in (1, 2)
    ]
    results = asyncio.run(recorder.record_many("t", events))
    assert [r.duplicate for r in results] == [False, False]
    assert recorder.progress_rates is None
