"""`record_event`: the local activity behind the workflow's `emit(...)`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.authoring import MetadataTooLargeError
from activities.budget import budget_failure
from activities.recorder import EventRecorder, NewEvent
from schemas import InvalidEventError
from schemas.workflow import (
    CHAPTER_CLOSED,
    INVALID_EVENT,
    RECORD_EVENT,
    RecordEventInput,
    RecordEventResult,
)
from store.budget import EventBudgetExceededError
from store.events import ChapterClosedError
from store.live_state import METADATA_TOO_LARGE_SQLSTATE
from telemetry.logs import bind_log_context


class RecordingActivities:
    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    @activity.defn(name=RECORD_EVENT)
    async def record_event(self, request: RecordEventInput) -> RecordEventResult:
        info = activity.info()
        bind_log_context(task_id=request.task_id, workflow_id=info.workflow_id)
        return await record_for_workflow(self._recorder, request, info.workflow_run_id)


async def record_for_workflow(
    recorder: EventRecorder, request: RecordEventInput, run_id: str | None
) -> RecordEventResult:
    """Record one of a run's events from a local activity, its failures typed as the
    workflow reads them (`record_event`, and the opening in activities/opening.py)."""
    with _typed_failures():
        return await recorder.record(
            event_id=request.event_id,
            task_id=request.task_id,
            event_type=request.event_type,
            data=request.data,
            run_id=run_id,
        )


async def record_many_for_workflow(
    recorder: EventRecorder, task_id: str, events: Sequence[RecordEventInput], run_id: str | None
) -> list[RecordEventResult]:
    """`record_for_workflow` for several events of one task, in one transaction (all or
    none, in order: `EventRecorder.record_many`); never `task.created.v1`."""
    batch = [NewEvent(e.event_id, e.event_type, e.data) for e in events]
    with _typed_failures():
        return await recorder.record_many(task_id, batch, run_id=run_id)


@contextmanager
def _typed_failures() -> Iterator[None]:
    """A recording's failures as the workflow reads them: the ones no retry can mend are
    non-retryable `ApplicationError`s of a known type."""
    try:
        yield
    except InvalidEventError as exc:
        raise ApplicationError(str(exc), type=INVALID_EVENT, non_retryable=True) from exc
    except EventBudgetExceededError as exc:
        raise budget_failure(exc) from exc
    except ChapterClosedError as exc:
        # Only a run Temporal already closed, or one a reset left behind, gets here.
        raise ApplicationError(str(exc), type=CHAPTER_CLOSED, non_retryable=True) from exc
    except psycopg.Error as exc:
        if exc.sqlstate != METADATA_TOO_LARGE_SQLSTATE:
            raise
        # Workflow code's set_metadata would grow the metadata past its cap: the same
        # patch would be refused on every attempt (workflows/authoring.py).
        raise MetadataTooLargeError(None) from exc
