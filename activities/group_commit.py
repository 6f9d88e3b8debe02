"""Group commit: recordings that arrive while commits are in flight share one round trip.

A worker process records the events of many tasks at once (steps record their own,
the workflows' `record_event` local activities the rest), each an append (a pool
checkout, a statement, a commit) and a publish (a redis-py pipeline), whose Python
costs more of the worker's CPU than the work itself (docs/performance.md, issue 15).

No timer, no added wait: a recording that finds fewer than `in_flight` commits in
flight (2 by default) goes straight through, alone, exactly as without groups.
Recordings that arrive while that many are in flight queue; when one of those is
committed (its publish may still be on its way), those queued (up to `max_group`) go
as one group: one transaction for all their events (store/event_groups.py: each event
still gets its own sequence, outbox row and so on), one publish for the group's
events, and each caller returns only after its own event is committed (and published,
best effort). Under load groups form by themselves; with no concurrency there is
never one. One commit in flight groups the most (the least CPU a recording), two keep
a burst's first two recordings from waiting (docs/performance.md, "Group commit").

An event the group's statements could not simply take (a duplicate, a closed chapter,
a new run, the budget) is left out of the commit and its recording then runs alone, as
without groups, so it meets its own outcome (`ChapterClosedError`, `NewRunError`, ...
reach exactly the caller whose event caused them); a group whose transaction fails (a
raced id, a pruned task, a lost connection) writes nothing and all of its recordings
run alone. No recording's error fails another's event.

A caller cancelled while queued (an activity's timeout) is dropped from its group;
one cancelled while its group is in flight may still have its event committed, as an
append cancelled mid-statement may: the retry finds it by id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from schemas import EventEnvelope
from schemas.workflow import RecordEventResult
from store import AppendResult, EventStore

log = logging.getLogger(__name__)

# One recording alone (the recorder's own path): (envelope, run id, turn over) -> its
# result; it calls `turn over` once its commit is done, before its publish.
RecordAlone = Callable[
    [EventEnvelope, str | None, Callable[[], None]], Awaitable[RecordEventResult]
]
# After a group's commit: publish its events ((appended, envelope) pairs), best effort.
GroupCommitted = Callable[[Sequence[tuple[AppendResult, EventEnvelope]]], Awaitable[None]]


@dataclass(slots=True)
class _Waiting:
    envelope: EventEnvelope
    run_id: str | None
    # Its group's result, or None: the group was not plain, record alone (or the error
    # of its recording when it went alone in its turn).
    outcome: asyncio.Future[RecordEventResult | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def resolve(self, result: RecordEventResult | None) -> None:
        if not self.outcome.done():  # a cancelled caller's future is done already
            self.outcome.set_result(result)


class GroupCommitter:
    def __init__(
        self,
        store: EventStore,
        *,
        max_group: int,
        in_flight: int = 1,
        alone: RecordAlone,
        committed: GroupCommitted,
    ) -> None:
        if max_group < 2:
            raise ValueError("a group holds at least two recordings (1: no groups)")
        self._store = store
        self._max_group = max_group
        # Commits (alone or grouped) this process lets run at once before recordings queue.
        self._max_in_flight = in_flight
        self._alone = alone
        self._committed = committed
        self._in_flight = 0  # recordings' or groups' commits in flight
        self._queue: list[_Waiting] = []
        self._rounds: set[asyncio.Task[None]] = set()
        self.groups = 0  # groups committed whole
        self.grouped = 0  # recordings in them
        self.fallbacks = 0  # groups that went one by one

    async def record(self, envelope: EventEnvelope, run_id: str | None) -> RecordEventResult:
        """Record `envelope` (of run `run_id`): alone now, or in the next group."""
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            turn = _Turn(self._next)
            try:
                return await self._alone(envelope, run_id, turn.over)
            finally:
                turn.over()
        waiting = _Waiting(envelope, run_id)
        self._queue.append(waiting)
        result = await waiting.outcome
        if result is None:
            return await self._alone(envelope, run_id, _no_turn)
        return result

    def _next(self) -> None:
        """The commit in flight ended: send what queued meanwhile, or go idle. Its
        publish may still be on its way: the next commit does not wait for it."""
        group: list[_Waiting] = []
        while self._queue and len(group) < self._max_group:
            waiting = self._queue.pop(0)
            if not waiting.outcome.done():
                group.append(waiting)
        if not group:
            self._in_flight -= 1
            return
        # One alone needs no transaction: it goes as it would have, still in turn.
        round_trip = self._lone(group[0]) if len(group) == 1 else self._round(group)
        task = asyncio.create_task(round_trip, name="taskplane-group-commit")
        self._rounds.add(task)
        task.add_done_callback(self._rounds.discard)

    async def _lone(self, waiting: _Waiting) -> None:
        turn = _Turn(self._next)
        try:
            result = await self._alone(waiting.envelope, waiting.run_id, turn.over)
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is its caller's
            if not waiting.outcome.done():
                waiting.outcome.set_exception(exc)  # its own outcome, to its own caller
        else:
            waiting.resolve(result)
        finally:
            waiting.resolve(None)  # cancelled in flight (shutdown): it tries alone itself
            turn.over()

    async def _round(self, group: list[_Waiting]) -> None:
        turn = _Turn(self._next)
        try:
            await self._commit(group, turn)
        except Exception:
            log.exception("group commit failed; its recordings go one by one")
        finally:
            for waiting in group:
                waiting.resolve(None)  # any not resolved yet: alone
            turn.over()

    async def _commit(self, group: list[_Waiting], turn: _Turn) -> None:
        appended = await self._store.append_group([(w.envelope, w.run_id) for w in group])
        turn.over()  # the next group may commit while this one publishes
        if appended is None:
            self.fallbacks += 1
            log.info(
                "group commit failed; its recordings go one by one", extra={"size": len(group)}
            )
            return
        taken = [(a, w) for a, w in zip(appended, group, strict=True) if a is not None]
        self.groups += 1
        self.grouped += len(taken)
        try:
            if taken:
                await self._committed([(a, w.envelope) for a, w in taken])
        finally:  # committed: whatever the publish did, each caller's event is recorded
            for result, waiting in taken:
                waiting.resolve(RecordEventResult(sequence=result.sequence, duplicate=False))
        # The others (not resolved: their statement took nothing) go alone in `_round`.


class _Turn:
    """The turn of one commit in flight: over once (after its commit, or however it
    ends), then the next group goes."""

    __slots__ = ("_next", "_over")

    def __init__(self, next_turn: Callable[[], None]) -> None:
        self._next = next_turn
        self._over = False

    def over(self) -> None:
        if not self._over:
            self._over = True
            self._next()


def _no_turn() -> None:
    """A recording that goes alone after its group: it holds no turn."""
