"""Deterministic event ids shared by activities and the workflow.

The `task.step.failed.v1` of one attempt has ONE id, whoever records it: the
attempt itself when it raises, the next attempt when the previous one died
without a word (timed out, worker killed), or the workflow when the last
attempt timed out. Recording it twice therefore records it once.
"""

from __future__ import annotations

import uuid

EVENT_ID_NAMESPACE = uuid.UUID("6f1c1d2e-53a4-4c5e-9b8e-7a4f0d7c2b11")


def activity_event_id(prefix: str, kind: str, counter: int) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{prefix}/{kind}/{counter}"))


def attempt_prefix(workflow_id: str, run_id: str, activity_id: str, attempt: int) -> str:
    return f"{workflow_id}/{run_id}/{activity_id}/{attempt}"


def step_failed_event_id(workflow_id: str, run_id: str, activity_id: str, attempt: int) -> str:
    prefix = attempt_prefix(workflow_id, run_id, activity_id, attempt)
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{prefix}/failed"))


def reset_event_id(task_id: str, run_id: str) -> str:
    """`task.reset.v1` that begins run `run_id`'s chapter: one id, whichever event of the
    run comes first and however many workers see it."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{task_id}/{run_id}/reset"))


def closed_event_id(task_id: str, run_id: str) -> str:
    """The terminal event the reconciler records for run `run_id` when the run closed
    without recording one: one id, however many reconcilers find it."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{task_id}/{run_id}/reconciled-close"))
