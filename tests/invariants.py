"""The delivery invariants, checked one way by every test that breaks something on purpose.

The store's history is the truth. Per task:

1. sequences are dense: 1, 2, …, N, each once;
2. event ids are unique (across every task checked);
3. chapters: an operator's reset (`task.reset.v1`) begins a new chapter. Exactly one
   terminal event after the last `task.reset.v1` (or in the whole history when there is
   none), and it is the last event (`require_terminal=False` for a task still running: at
   most one, and then last); an earlier chapter has at most one, and it ends that chapter
   (a reset of a running task cuts its chapter short without one).

Per observer — an SSE client, a durable handler, a webhook receiver, a raw view of the
broker — given what it saw (event ids, or events/envelopes, in the order it saw them):

4. it saw every event it should have exactly once: none missing, none twice, none the
   store does not have, and with the store's task, sequence and type;
   `ordered=True` (SSE) also requires ascending sequences per task;
   `at_least_once=True` (the broker itself, which may carry a duplicate) allows repeats.

Usage::

    history = await load_history(pool, [task_id])
    check_delivery(
        history,
        [
            Observer.sse("sse client 1", task_id, [payload(frame) for frame in frames]),
            Observer("effects handler", event_ids),  # any handler: its event ids
            Observer("webhook", ids, event_types=frozenset({"task.completed.v1"})),
        ],
        tasks=[task_id],
    )  # raises InvariantViolation listing every problem; find_violations() returns them

`wait_until_delivered` polls a collecting function until the check passes (or raises
the last violations at the deadline), for observers that catch up asynchronously.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool

from schemas import TERMINAL_EVENT_TYPES, latest_type


@dataclass(frozen=True, slots=True)
class Event:
    """The identity of one event: enough to tell it apart and place it in its task."""

    task_id: str
    sequence: int
    event_id: str
    type: str

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any] | str | bytes) -> Event:
        """From a CloudEvents envelope (parsed, or its JSON text) as history/SSE/broker carry it."""
        body: Mapping[str, Any] = (
            envelope if isinstance(envelope, Mapping) else orjson.loads(envelope)
        )
        return cls(str(body["subject"]), int(body["sequence"]), str(body["id"]), str(body["type"]))

    def describe(self) -> str:
        return f"{self.event_id} (task {self.task_id} seq {self.sequence} {self.type})"


@dataclass(frozen=True)
class Observer:
    """What one consumer saw. `seen` holds event ids or `Event`s, in the order seen.

    `tasks`: the tasks it watched (None: every task in the history); `event_types`: the
    types it should get (None: all), e.g. a webhook subscribed to some types.
    """

    name: str
    seen: Sequence[str | Event]
    ordered: bool = False
    at_least_once: bool = False
    tasks: frozenset[str] | None = None
    event_types: frozenset[str] | None = None

    @classmethod
    def sse(cls, name: str, task_id: str, envelopes: Iterable[Mapping[str, Any] | str]) -> Observer:
        """An SSE client of one task: every event once, in sequence order."""
        seen = [Event.from_envelope(e) for e in envelopes]
        return cls(name, seen, ordered=True, tasks=frozenset({task_id}))


class InvariantViolation(AssertionError):
    """Raised by `check_delivery`; `problems` lists every violation found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n  ".join(problems[:25])
        more = f"\n  … and {len(problems) - 25} more" if len(problems) > 25 else ""
        super().__init__(f"{len(problems)} delivery invariant violation(s):\n  {shown}{more}")


def find_violations(
    history: Iterable[Event],
    observers: Iterable[Observer] = (),
    *,
    tasks: Iterable[str] | None = None,
    require_terminal: bool = True,
) -> list[str]:
    """Every violated invariant, as readable lines; empty when all hold.

    `tasks`: tasks that must have events at all (a task missing from the store is
    otherwise invisible).
    """
    stored = list(history)
    problems: list[str] = []
    by_task: dict[str, list[Event]] = defaultdict(list)
    for event in stored:
        by_task[event.task_id].append(event)
    for task_id in tasks or ():
        if task_id not in by_task:
            problems.append(f"task {task_id}: the store has no events")
    for task_id, events in sorted(by_task.items()):
        problems.extend(_task_problems(task_id, events, require_terminal=require_terminal))
    id_counts = Counter(e.event_id for e in stored)
    problems.extend(
        f"event id {event_id} is stored {n} times" for event_id, n in id_counts.items() if n > 1
    )
    truth = {e.event_id: e for e in stored}
    for observer in observers:
        problems.extend(_observer_problems(observer, stored, truth))
    return problems


def check_delivery(
    history: Iterable[Event],
    observers: Iterable[Observer] = (),
    *,
    tasks: Iterable[str] | None = None,
    require_terminal: bool = True,
) -> None:
    """Raise `InvariantViolation` unless every invariant holds."""
    problems = find_violations(history, observers, tasks=tasks, require_terminal=require_terminal)
    if problems:
        raise InvariantViolation(problems)


RESET_TYPE = "task.reset.v1"


def _task_problems(task_id: str, events: list[Event], *, require_terminal: bool) -> list[str]:
    problems = []
    ordered = sorted(events, key=lambda e: e.sequence)
    sequences = [e.sequence for e in ordered]
    if sequences != list(range(1, len(sequences) + 1)):
        repeated = sorted(s for s, n in Counter(sequences).items() if n > 1)
        missing = sorted(set(range(1, max(sequences) + 1)) - set(sequences))
        problems.append(
            f"task {task_id}: sequences are not dense 1..N "
            f"(missing {missing[:10]}, repeated {repeated[:10]}, lowest {sequences[0]})"
        )
    chapters: list[list[Event]] = [[]]
    for event in ordered:
        if event.type == RESET_TYPE and chapters[-1]:
            chapters.append([])
        chapters[-1].append(event)
    for number, chapter in enumerate(chapters, start=1):
        current = number == len(chapters)
        where = f"task {task_id}" + (f" chapter {number}" if len(chapters) > 1 else "")
        terminals = [e for e in chapter if e.type in TERMINAL_EVENT_TYPES]
        if len(terminals) > 1:
            listed = ", ".join(e.describe() for e in terminals)
            problems.append(f"{where}: {len(terminals)} terminal events: {listed}")
        elif not terminals and require_terminal and current:
            problems.append(f"{where}: no terminal event (last: {chapter[-1].describe()})")
        if terminals and chapter[-1].type not in TERMINAL_EVENT_TYPES:
            problems.append(
                f"{where}: the terminal event is not last: {chapter[-1].describe()} follows"
            )
    return problems


def _as_read(event: Event) -> Event:
    return replace(event, type=latest_type(event.type))


def _observer_problems(
    observer: Observer, stored: list[Event], truth: Mapping[str, Event]
) -> list[str]:
    name = observer.name

    def in_scope(event: Event) -> bool:
        return (observer.tasks is None or event.task_id in observer.tasks) and (
            observer.event_types is None or event.type in observer.event_types
        )

    expected = [e for e in stored if in_scope(e)]
    problems = []
    seen_ids: list[str] = []
    for item in observer.seen:
        event_id = item.event_id if isinstance(item, Event) else item
        seen_ids.append(event_id)
        known = truth.get(event_id)
        if known is None or not in_scope(known):
            shown = item.describe() if isinstance(item, Event) else event_id
            problems.append(f"{name}: saw {shown}, which is not a stored event it should see")
        # Readers may get an older stored version upcast (`?version=` of SSE and history).
        elif isinstance(item, Event) and _as_read(item) != _as_read(known):
            problems.append(f"{name}: saw {item.describe()}, but the store has {known.describe()}")
    counts = Counter(seen_ids)
    for event in expected:
        n = counts[event.event_id]
        if n == 0:
            problems.append(f"{name}: never saw {event.describe()}")
        elif n > 1 and not observer.at_least_once:
            problems.append(f"{name}: saw {event.describe()} {n} times")
    if observer.ordered:
        last: dict[str, int] = {}
        for event_id in seen_ids:
            known = truth.get(event_id)
            if known is None:
                continue
            if known.sequence <= last.get(known.task_id, 0):
                problems.append(
                    f"{name}: saw {known.describe()} after sequence {last[known.task_id]}"
                )
            last[known.task_id] = max(known.sequence, last.get(known.task_id, 0))
    return problems


async def load_history(pool: AsyncConnectionPool, task_ids: Iterable[str]) -> list[Event]:
    """The store's events of these tasks, in task and sequence order: the truth."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT task_id, seq, event_id, event_type FROM events"
            " WHERE task_id = ANY(%s) ORDER BY task_id, seq",
            (list(task_ids),),
        )
        rows = await cursor.fetchall()
    return [Event(str(t), int(s), str(i), str(k)) for t, s, i, k in rows]


async def wait_until_delivered(
    collect: Callable[[], Awaitable[tuple[list[Event], list[Observer]]]],
    *,
    tasks: Iterable[str] | None = None,
    require_terminal: bool = True,
    within: float = 20.0,
    settle: float = 0.5,
) -> tuple[list[Event], list[Observer]]:
    """Collect (history, observers) until every invariant holds; raise the last problems.

    Once it holds, it must still hold `settle` seconds later: a duplicate arrives
    after the original, so a check that passes at once could miss it.
    """
    task_list = list(tasks) if tasks is not None else None
    deadline = time.monotonic() + within
    passed_at: float | None = None
    while True:
        history, observers = await collect()
        problems = find_violations(
            history, observers, tasks=task_list, require_terminal=require_terminal
        )
        now = time.monotonic()
        if problems:
            passed_at = None
            if now > deadline:
                raise InvariantViolation(problems)
        elif passed_at is None:
            passed_at = now
        elif now - passed_at >= settle:
            return history, observers
        await asyncio.sleep(0.1)
