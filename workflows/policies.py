"""The task workflow's fixed choices: patch ids, retry policies and timeouts.

Constants only, apart from one small pure helper, kept apart from `TaskWorkflow` so the
workflow file reads as behaviour, and so code that must issue the very same commands
(the bench's workflows) takes them from one place. Changing a value here changes the
commands of new runs: it needs a patch like any other workflow change.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from schemas.size import cap_text
from schemas.workflow import INVALID_EVENT, STEP_FAILED
from workflows.demo import STEP_MAX_ATTEMPTS

# Patches: each guards a change of commands, so histories of older runs still replay.
# Retire one (docs/versioning.md) once no run that started before it can be open.
PATCH_TASK_STEP_ATTRIBUTE = "task-step-search-attribute"
PATCH_TIMEOUT_STEP_FAILED = "timeout-step-failed-event"
# Every cancel closes the run as Canceled in Temporal (issue 14): a native cancel during a
# step is a cancel, not a failure; a signalled cancel asks Temporal to cancel the run.
PATCH_CANCEL_CLOSES_CANCELED = "cancel-closes-canceled"
# A native cancel that reaches an event's recording (the local activity) records the event
# anyway and takes effect at the next step boundary: was a failed task (paused/resumed) or
# a run closed with no terminal event (task.created.v1).
PATCH_CANCEL_DURING_RECORD = "cancel-during-record"
# Search attributes cost a command (a visibility write) per upsert (issue 15): `TaskStatus`
# is upserted only when it differs from what the run shows (a task started by `TaskClient`
# shows `running` from its start), and `TaskStep` only with a status change, in the same
# upsert; the step a running task is on is in its current details (no command).
PATCH_LEAN_SEARCH_ATTRIBUTES = "lean-search-attributes"
# A debounced task (workflows/debounce.py) says in `task.created.v1` what it collapsed.
PATCH_DEBOUNCED = "debounced-created"
# Concurrency keys (issue 24): a task whose input names a limit takes a slot of its key
# before its first step and gives it back at its end (workflows/admission.py).
PATCH_ADMISSION = "admission"
# Scheduled tasks' flow control (issue 24): a schedule's run passes its concurrency key,
# limit, priority and Temporal Priority (fairness key: the tenant) to its task.
PATCH_SCHEDULED_FLOW = "scheduled-flow"
# Parked tasks (issue 24): the API queued the task before its run began; admitted when
# woken, the run records its `task.queued.v1` (its parked position) and `task.admitted.v1`.
PATCH_PARKED_ADMISSION = "parked-admission"
# A run's opening in one local activity (`open_task`, issue 24): `task.created.v1`, the
# claim, and a woken parked task's line were one local activity each.
PATCH_ONE_OPENING = "one-opening"
# … and its closing: the terminal event and the slot's release (`close_task`).
PATCH_ONE_CLOSING = "one-closing"

RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,  # never give up on an event: the store may be down for a while
    non_retryable_error_types=[INVALID_EVENT],
)
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=STEP_MAX_ATTEMPTS,
    non_retryable_error_types=[STEP_FAILED, INVALID_EVENT],
)
STEP_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# One attempt of a local activity (recording an event, asking for the run's cancellation).
LOCAL_ACTIVITY_TIMEOUT = timedelta(seconds=10)


def native_cancel_reason() -> str:
    """The operator's reason for a Temporal-native cancel, when Temporal carries one."""
    return cap_text(workflow.cancellation_reason() or "") or "cancelled through Temporal"
