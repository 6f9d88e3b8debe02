"""The invariant checker finds each violation it claims to find, and passes a clean run."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from tests.invariants import (
    Event,
    InvariantViolation,
    Observer,
    check_delivery,
    find_violations,
    wait_until_delivered,
)

TASK = "task-a"
OTHER = "task-b"


def history(
    task_id: str = TASK, steps: int = 2, terminal: str = "task.completed.v1"
) -> list[Event]:
    types = ["task.created.v1", *(["task.step.completed.v1"] * steps), terminal]
    return [Event(task_id, n, f"{task_id}-e{n}", t) for n, t in enumerate(types, start=1)]


def ids(events: list[Event]) -> list[str]:
    return [e.event_id for e in events]


def only(problems: list[str], fragment: str) -> None:
    assert len(problems) == 1, problems
    assert fragment in problems[0], problems


def test_a_clean_run_passes() -> None:
    stored = history() + history(OTHER)
    assert find_violations(stored, tasks=[TASK, OTHER]) == []
    check_delivery(
        stored,
        [
            Observer("handler", list(reversed(ids(stored)))),  # handlers need no order
            Observer("sse a", history(), ordered=True, tasks=frozenset({TASK})),
            Observer("sse b", history(OTHER), ordered=True, tasks=frozenset({OTHER})),
        ],
    )


def test_observers_built_from_envelopes_and_json() -> None:
    stored = history()
    envelopes = [
        {"id": e.event_id, "subject": e.task_id, "sequence": e.sequence, "type": e.type}
        for e in stored
    ]
    as_text = [orjson.dumps(e).decode() for e in envelopes]
    check_delivery(
        stored, [Observer.sse("dicts", TASK, envelopes), Observer.sse("text", TASK, as_text)]
    )


@pytest.mark.parametrize(
    ("sequences", "fragment"),
    [
        ([1, 2, 4, 5], "missing [3]"),
        ([1, 2, 2, 3], "repeated [2]"),
        ([2, 3, 4, 5], "lowest 2"),
    ],
)
def test_sequences_must_be_dense_from_one(sequences: list[int], fragment: str) -> None:
    stored = [dataclasses.replace(e, sequence=s) for e, s in zip(history(), sequences, strict=True)]
    only(find_violations(stored), fragment)


def test_event_ids_must_be_unique() -> None:
    stored = history()
    stored[2] = dataclasses.replace(stored[2], event_id=stored[1].event_id)
    only(find_violations(stored), "stored 2 times")


def test_exactly_one_terminal_event_and_last() -> None:
    running = history()[:-1]
    only(find_violations(running), "no terminal event")
    assert find_violations(running, require_terminal=False) == []

    two = history()
    two[1] = dataclasses.replace(two[1], type="task.failed.v1")
    problems = find_violations(two)
    assert any("2 terminal events" in p for p in problems), problems

    early = history()
    early[-1], early[-2] = (
        dataclasses.replace(early[-1], type="task.step.completed.v1"),
        dataclasses.replace(early[-2], type="task.cancelled.v1"),
    )
    only(find_violations(early), "terminal event is not last")
    only(find_violations(early, require_terminal=False), "terminal event is not last")


def test_a_task_with_no_events_is_reported_when_named() -> None:
    only(find_violations(history(), tasks=[TASK, OTHER]), f"task {OTHER}: the store has no events")


def test_an_observer_must_see_every_event() -> None:
    stored = history()
    only(find_violations(stored, [Observer("handler", ids(stored)[:-1])]), "handler: never saw")


def test_an_observer_must_not_see_an_event_twice() -> None:
    stored = history()
    seen = [*ids(stored), stored[1].event_id]
    only(find_violations(stored, [Observer("handler", seen)]), "2 times")
    # ... unless it is the broker itself, which is allowed to carry a duplicate.
    assert find_violations(stored, [Observer("broker", seen, at_least_once=True)]) == []
    missing = Observer("broker", seen[1:], at_least_once=True)
    only(find_violations(stored, [missing]), "never saw")


def test_an_observer_must_not_see_what_the_store_does_not_have() -> None:
    stored = history()
    only(find_violations(stored, [Observer("handler", [*ids(stored), "ghost"])]), "ghost")
    # Nor events of a task it did not watch.
    both = stored + history(OTHER)
    watcher = Observer("sse", [*ids(stored), ids(history(OTHER))[0]], tasks=frozenset({TASK}))
    only(find_violations(both, [watcher]), "not a stored event it should see")


def test_an_observer_must_see_the_stored_sequence_and_type() -> None:
    stored = history()
    seen = list(stored)
    seen[1] = dataclasses.replace(seen[1], sequence=7)
    only(find_violations(stored, [Observer("sse", seen)]), "but the store has")


def test_an_ordered_observer_must_see_ascending_sequences() -> None:
    stored = history()
    swapped = [stored[0], stored[2], stored[1], stored[3]]
    only(find_violations(stored, [Observer("sse", swapped, ordered=True)]), "after sequence 3")
    assert find_violations(stored, [Observer("handler", swapped)]) == []


def test_event_types_limit_what_an_observer_must_see() -> None:
    stored = history()
    wanted = frozenset({"task.completed.v1"})
    assert (
        find_violations(stored, [Observer("hook", [stored[-1].event_id], event_types=wanted)]) == []
    )
    problems = find_violations(stored, [Observer("hook", ids(stored), event_types=wanted)])
    assert len(problems) == 3, problems
    assert all("should see" in p for p in problems), problems


def test_check_delivery_raises_with_every_problem() -> None:
    stored = history()[:-1]
    with pytest.raises(InvariantViolation) as caught:
        check_delivery(stored, [Observer("handler", [])])
    assert len(caught.value.problems) == 1 + len(stored)
    assert "no terminal event" in str(caught.value)


async def test_wait_until_delivered_waits_for_late_observers_and_catches_late_duplicates() -> None:
    stored = history()
    seen: list[str] = []

    async def collect() -> tuple[list[Event], list[Observer]]:
        if len(seen) < len(stored):
            seen.append(stored[len(seen)].event_id)  # one more each poll
        return stored, [Observer("late handler", list(seen))]

    await wait_until_delivered(collect, within=5, settle=0.2)

    polls = 0

    async def duplicate_after_passing() -> tuple[list[Event], list[Observer]]:
        nonlocal polls
        polls += 1
        extra = [stored[0].event_id] if polls > 1 else []
        return stored, [Observer("handler", ids(stored) + extra)]

    with pytest.raises(InvariantViolation, match="2 times"):
        await wait_until_delivered(duplicate_after_passing, within=0.3, settle=0.2)
