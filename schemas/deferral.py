"""A start deferred by the rate limit (issue 24; docs/rate-limits.md): the event, and
what the API, the worker and `DeferralNoticeWorkflow` (workflows/deferral.py) agree on.

A type with `over_limit: defer` gets its task's workflow started with Temporal's
`start_delay`; beside it the API starts a small workflow, `deferred-<task id>`, whose
one activity records `task.deferred.v1` under the task's id, so the deferral is an
event of the task (status `queued`, the stream, webhooks) from the moment it is booked.
Pure: no I/O, imported through the sandbox. Add, never rename.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, Field

from schemas.events import EventData

DEFERRAL_NOTICE_WORKFLOW: Final = "DeferralNoticeWorkflow"
RECORD_DEFERRAL: Final = "record_deferral"
_PREFIX: Final = "deferred-"
# Fixed forever: stored event ids were derived with it.
_NAMESPACE: Final = uuid.UUID("0c1d7f3e-6a2b-4d8e-9f10-24d3fe11a0b7")


def deferral_workflow_id(task_id: str) -> str:
    return f"{_PREFIX}{task_id}"


def deferral_event_id(task_id: str) -> str:
    """One deferral event per task, whoever records it and however often."""
    return str(uuid.uuid5(_NAMESPACE, task_id))


class TaskDeferredV1(EventData):
    """The task's start was deferred: it is accepted and starts at `until` (Temporal
    holds its workflow back until then). The status is `queued` until
    `task.created.v1`, which follows when it starts."""

    event_type = "task.deferred.v1"
    until: Annotated[str, Field(json_schema_extra={"format": "date-time"})] = Field(
        description="When the task starts (its booked start), RFC 3339."
    )
    reason: Literal["rate_limit"] = Field(
        default="rate_limit", description="Why: a start rate of its type says `defer`."
    )
    rule: str | None = Field(
        default=None,
        description="The rate rule that deferred it, as named in `RateLimit-Policy`"
        " (e.g. `type-m`).",
    )
    task_type: str | None = Field(default=None, description="The task's type.")


class DeferralNotice(BaseModel):
    """`DeferralNoticeWorkflow`'s argument, and its activity's."""

    task_id: str
    task_type: str
    until: AwareDatetime
    rule: str | None = None
