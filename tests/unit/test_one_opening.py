"""A run's opening and closing are one local activity each (`open_task`, `close_task`;
patches `one-opening`, `one-closing`): a parked task woken with its slot recorded
`task.created.v1`, claimed, and recorded its line in four local activities, and its
terminal event and release in two; the stored v16 history
(tests/replay/record_histories.py) shows one and one, and `test_replay` replays it with
today's code."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

HISTORIES = Path(__file__).parent.parent / "replay" / "histories"


def _local_activities(history: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The local activities before the run's first step, and after its last."""
    before: list[str] = []
    after: list[str] = []
    for event in history["events"]:
        if "activityTaskScheduledEventAttributes" in event:
            after = []
        marker = event.get("markerRecordedEventAttributes")
        if marker is None or marker["markerName"] != "core_local_activity":
            continue
        data = json.loads(base64.b64decode(marker["details"]["data"]["payloads"][0]["data"]))
        stepped = any(
            "activityTaskScheduledEventAttributes" in e
            for e in history["events"]
            if int(e["eventId"]) < int(event["eventId"])
        )
        (after if stepped else before).append(data["activity_type"])
    return before, after


@pytest.mark.parametrize(
    ("version", "opening", "closing"),
    [
        (
            "v15",
            ["record_event", "admission_acquire", "record_event", "record_event"],
            ["record_event", "admission_release"],
        ),
        ("v16", ["open_task"], ["close_task"]),
    ],
)
def test_a_parked_task_opens_and_closes_in_one_local_activity_each(
    version: str, opening: list[str], closing: list[str]
) -> None:
    history = json.loads((HISTORIES / f"{version}_parked_admitted.json").read_text())
    assert _local_activities(history) == (opening, closing)
