"""Persist an event, then ring the broker: the one recording path of the worker.

Used by the `record_event` local activity (task-level events from the
workflow) and directly by step activities (their own step events), so a
progress tick costs no Temporal round trip.

After the commit everything is best effort (activities/publisher.py): the event is
safe in the store and its outbox row pending, so a publish that fails never fails the
activity; the relay takes it.

Group commit (activities/group_commit.py): recordings that arrive while this process
has `commits_in_flight` commits in flight share the next round trip (one transaction,
one publish); a recording that finds fewer goes straight through. `max_group=1`: never.

Chapters: every event names the Temporal run that caused it. The first event of
a run the task has not seen (an operator's reset) is preceded by `task.reset.v1`
(deterministic id from the new run, so concurrent steps of that run record it
once); the new run's own `task.created.v1` is then superseded, since the task
exists. Events of a chapter that has ended, or of a run a reset left behind, are
refused with `ChapterClosedError`, so nothing follows a chapter's terminal event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from activities.coalesce import RateGates
from activities.group_commit import GroupCommitter
from activities.published_marks import MARK_DELAY_SECONDS
from activities.publisher import CommitPublisher, Fresh
from activities.publisher import PublishListener as PublishListener
from broker import EventBroker
from schemas import EventEnvelope, check_size, validate_data
from schemas.envelope import schema_id
from schemas.ids import reset_event_id
from schemas.size import cap_free_text
from schemas.workflow import RecordEventResult
from store import AppendResult, EventStore, Outbox
from store.events import AlreadyCreatedError, NewRunError
from telemetry.publish import PublishTimer
from telemetry.tracing import current_trace_headers

log = logging.getLogger(__name__)

# Recordings one group commit takes at most (`TASKPLANE_RECORD_GROUP_MAX`; 1: no groups).
DEFAULT_MAX_GROUP = 32
# Commits in flight at once before recordings queue for a group
# (`TASKPLANE_RECORD_COMMITS_IN_FLIGHT`).
DEFAULT_COMMITS_IN_FLIGHT = 2

# Fault injection for tests only (see activities/faults.py): runs right after the commit,
# before the publish. Production never passes one.
AfterCommitHook = Callable[[str, AppendResult], None]


class ResetDetails(Protocol):
    """Where and why a reset began run `run_id` of the task (`temporal.resets`)."""

    async def __call__(self, task_id: str, run_id: str) -> tuple[str | None, str | None]:
        """(reset point, reason), each None when Temporal cannot say."""
        ...


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event of a batch for `EventRecorder.record_many`."""

    event_id: str
    event_type: str
    data: dict[str, Any]


class EventRecorder:
    def __init__(
        self,
        store: EventStore,
        outbox: Outbox,
        broker: EventBroker,
        *,
        publish_timeout: float = 1.0,
        publish_listener: PublishListener | None = None,
        after_commit: AfterCommitHook | None = None,
        reset_details: ResetDetails | None = None,
        publish_timer: PublishTimer | None = None,
        progress_rates: RateGates | None = None,
        mark_delay: float = MARK_DELAY_SECONDS,
        max_group: int = DEFAULT_MAX_GROUP,
        commits_in_flight: int = DEFAULT_COMMITS_IN_FLIGHT,
    ) -> None:
        self._store = store
        # How often steps of a task may record progress (activities/coalesce.py); None: always.
        self.progress_rates = progress_rates
        self._after_commit = after_commit
        self._reset_details = reset_details
        self._publisher = CommitPublisher(
            outbox,
            broker,
            publish_timeout=publish_timeout,
            listener=publish_listener,
            timer=publish_timer or PublishTimer(),
            mark_delay=mark_delay,
        )
        # Recordings that arrive while one is in flight share a round trip (None: never).
        self.groups = (
            GroupCommitter(
                store,
                max_group=max_group,
                in_flight=commits_in_flight,
                alone=self._record_alone,
                committed=self._grouped,
            )
            if max_group > 1
            else None
        )

    async def record(
        self,
        *,
        event_id: str,
        task_id: str,
        event_type: str,
        data: dict[str, Any],
        run_id: str | None = None,
    ) -> RecordEventResult:
        """Validate, append (dedupe by id), publish; a publish failure leaves the row pending.

        `run_id` is the Temporal run that caused the event (None: no chapter check).
        Raises `schemas.InvalidEventError` before anything is written when the
        data does not match the type's model, or `OversizedEventError` (one of
        them) when the envelope would exceed 64 KiB; `store.events.ChapterClosedError`
        when the event's chapter has ended.
        """
        envelope = self._envelope(event_id, task_id, event_type, data)
        if self.groups is not None:
            return await self.groups.record(envelope, run_id)
        return await self._record_alone(envelope, run_id, _nothing)

    async def _record_alone(
        self, envelope: EventEnvelope, run_id: str | None, committed: Callable[[], None]
    ) -> RecordEventResult:
        """`record` for one event in its own round trip (chapters handled here);
        `committed` is called once the store's part is done, before the publish."""
        task_id, event_type, event_id = envelope.subject, envelope.type, envelope.id
        try:
            appended = await self._store.append(envelope, run_id=run_id)
        except NewRunError as new_run:
            await self._begin_chapter(new_run)
            if event_type == "task.created.v1":
                return self._superseded(task_id, event_id)
            appended = await self._store.append(envelope, run_id=run_id)
        except AlreadyCreatedError:
            return self._superseded(task_id, event_id)
        committed()
        return await self._committed(appended, task_id, event_type, event_id)

    async def _grouped(self, group: Sequence[tuple[AppendResult, EventEnvelope]]) -> None:
        """After a group's commit (every event new): publish them together."""
        await self._after_commit_publish(
            [(appended, _fields(appended, envelope)) for appended, envelope in group]
        )

    async def record_many(
        self, task_id: str, events: Sequence[NewEvent], *, run_id: str | None = None
    ) -> list[RecordEventResult]:
        """`record` for several events of one task: appended in ONE transaction (all or
        none, in order: `EventStore.append_many`), published together. Raises as `record`
        does, nothing written then; never takes `task.created.v1` (`record`'s alone)."""
        if any(event.event_type == "task.created.v1" for event in events):
            raise ValueError("task.created.v1 is recorded alone, through record()")
        envelopes = [
            self._envelope(event.event_id, task_id, event.event_type, event.data)
            for event in events
        ]
        try:
            appended = await self._store.append_many(envelopes, run_id=run_id)
        except NewRunError as new_run:
            await self._begin_chapter(new_run)
            appended = await self._store.append_many(envelopes, run_id=run_id)
        recorded = [
            (result, event.event_type, event.event_id)
            for result, event in zip(appended, events, strict=True)
        ]
        return await self._committed_many(task_id, recorded)

    async def flush_marks(self) -> None:
        """Mark now the published rows whose marks are still gathering."""
        await self._publisher.flush_marks()

    def _envelope(
        self, event_id: str, task_id: str, event_type: str, data: dict[str, Any]
    ) -> EventEnvelope:
        model = validate_data(event_type, cap_free_text(data))
        # Built from the validated model, never from the caller's dict: one canonical shape.
        envelope = EventEnvelope(
            id=event_id,
            type=event_type,
            subject=task_id,
            time=datetime.now(UTC),
            dataschema=schema_id(event_type),
            data=model.model_dump(mode="json"),
            **current_trace_headers(),  # traceparent/tracestate while tracing is on
        )
        check_size(envelope)
        return envelope

    async def _begin_chapter(self, new_run: NewRunError) -> None:
        """Record `task.reset.v1` for the new run (once, whoever of its events comes first)."""
        task_id, run_id = new_run.task_id, new_run.to_run_id
        reset_point, reason = (None, None)
        if self._reset_details is not None:
            reset_point, reason = await self._reset_details(task_id, run_id)
        data = {
            "from_run_id": new_run.from_run_id,
            "to_run_id": run_id,
            "reset_point": reset_point,
            "reason": reason,
        }
        event_id = reset_event_id(task_id, run_id)
        envelope = self._envelope(event_id, task_id, "task.reset.v1", data)
        appended = await self._store.begin_chapter(envelope, run_id=run_id)
        if appended is None:
            return  # another event of this run began the chapter first
        log.warning(
            "the task's workflow was reset: a new chapter begins",
            extra={"task_id": task_id, "from_run_id": new_run.from_run_id, "run_id": run_id},
        )
        await self._committed(appended, task_id, "task.reset.v1", event_id)

    def _superseded(self, task_id: str, event_id: str) -> RecordEventResult:
        # A reset run starting over: the task exists, its chapter began with task.reset.v1.
        log.info(
            "task.created.v1 of a reset run superseded by its chapter",
            extra={"task_id": task_id, "event_type": "task.created.v1", "event_id": event_id},
        )
        return RecordEventResult(sequence=0, duplicate=True, superseded=True)

    async def _committed(
        self, appended: AppendResult, task_id: str, event_type: str, event_id: str
    ) -> RecordEventResult:
        (result,) = await self._committed_many(task_id, [(appended, event_type, event_id)])
        return result

    async def _committed_many(
        self, task_id: str, recorded: Sequence[tuple[AppendResult, str, str]]
    ) -> list[RecordEventResult]:
        """After the commit of `recorded` ((appended, type, id)): publish the new ones."""
        results: list[RecordEventResult] = []
        fresh: list[Fresh] = []
        for appended, event_type, event_id in recorded:
            fields = {
                "task_id": task_id,
                "event_type": event_type,
                "sequence": appended.sequence,
                "event_id": event_id,
            }
            if appended.duplicate:
                # Recorded before (a retry or a replay): that recording published it or
                # left it to the relay; publishing again here would only add a duplicate.
                log.info("event already recorded", extra=fields)
                results.append(RecordEventResult(sequence=appended.sequence, duplicate=True))
                continue
            fresh.append((appended, fields))
            results.append(RecordEventResult(sequence=appended.sequence, duplicate=False))
        await self._after_commit_publish(fresh)
        return results

    async def _after_commit_publish(self, fresh: Sequence[Fresh]) -> None:
        """The fault hook (tests only), then one publish for the new events of a commit."""
        if not fresh:
            return
        if self._after_commit is not None:
            for appended, fields in fresh:
                self._after_commit(fields["event_type"], appended)
        await self._publisher.publish(fresh)
        for _, fields in fresh:
            log.debug("event recorded", extra=fields)


def _fields(appended: AppendResult, envelope: EventEnvelope) -> dict[str, Any]:
    return {
        "task_id": envelope.subject,
        "event_type": envelope.type,
        "sequence": appended.sequence,
        "event_id": envelope.id,
    }


def _nothing() -> None:
    """No group commit: nobody waits for this recording's commit."""
