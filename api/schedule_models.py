"""Request and response bodies of `/schedules` (docs/schedules.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Ten years: no interval, window or jitter is longer (and timedelta arithmetic stays sane).
MAX_SECONDS = 10 * 366 * 86_400
SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

ScheduleId = Annotated[
    str,
    Field(
        pattern=SCHEDULE_ID_PATTERN,
        description="The schedule's id in its tenant (an external id): letters, digits,"
        " `.` `_` `:` `-`, up to 128. Creating with an id that exists returns that schedule.",
    ),
]
Overlap = Literal[
    "skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"
]
Cron = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f]+$",
        examples=["*/5 * * * *"],
        description="A cron expression as Temporal reads it (5 to 7 fields, or @daily …).",
    ),
]
Seconds = Annotated[int, Field(ge=1, le=MAX_SECONDS)]
TimeZone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_+\-/]+$",
        examples=["Europe/Berlin"],
        description="IANA time zone the cron is read in (default UTC).",
    ),
]


class ScheduleSpecFields(BaseModel):
    """When a schedule fires, and what happens when a fire meets a running one."""

    cron: Cron | None = None
    every: Seconds | None = Field(default=None, description="Fire every this many seconds.")
    timezone: TimeZone | None = None
    overlap: Overlap = Field(
        default="skip",
        description="What a fire does while the previous run's task is still running:"
        " Temporal's overlap policy.",
    )
    catchup_window: Annotated[int, Field(ge=10, le=MAX_SECONDS)] | None = Field(
        default=None,
        description="Seconds: fires missed (Temporal down) within this window still run"
        " (Temporal's default: a year).",
    )
    jitter: Annotated[int, Field(ge=0, le=MAX_SECONDS)] | None = Field(
        default=None, description="Seconds: each fire is delayed by a random time up to this."
    )


ConcurrencyKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00]+$",
        description="Each fire's task's concurrency key, as in `POST /tasks` (default: the"
        " tenant; docs/flow-control.md).",
    ),
]
Priority = Annotated[
    int, Field(ge=1, le=5, description="Each fire's task's priority, 1 first, 5 last.")
]


class ScheduleFlowFields(BaseModel):
    """Flow control of each fire's task, as `POST /tasks` takes it."""

    concurrency_key: ConcurrencyKey | None = None
    priority: Priority = 3


class CreateScheduleRequest(ScheduleSpecFields, ScheduleFlowFields):
    model_config = ConfigDict(extra="forbid")

    id: ScheduleId | None = None
    type: str = Field(min_length=1, max_length=200, examples=["demo.pipeline"])
    input: dict[str, Any] = Field(default_factory=dict, examples=[{"steps": 2}])
    paused: bool = False


class UpdateScheduleRequest(BaseModel):
    """Fields to change; the others keep their values. `paused` pauses or resumes."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, min_length=1, max_length=200)
    input: dict[str, Any] | None = None
    cron: Cron | None = None
    every: Seconds | None = None
    timezone: TimeZone | None = None
    overlap: Overlap | None = None
    catchup_window: Annotated[int, Field(ge=10, le=MAX_SECONDS)] | None = None
    jitter: Annotated[int, Field(ge=0, le=MAX_SECONDS)] | None = None
    paused: bool | None = None
    concurrency_key: ConcurrencyKey | None = None
    priority: Priority | None = Field(default=None, description="`null`: back to 3.")


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=500)


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap: Overlap | None = Field(
        default=None, description="This run's overlap policy (default: the schedule's)."
    )


class BackfillRequest(BaseModel):
    """Run the fires the schedule would have made in `[start_at, end_at)`."""

    model_config = ConfigDict(extra="forbid")

    start_at: AwareDatetime
    end_at: AwareDatetime
    overlap: Overlap | None = None


class ScheduleLinks(BaseModel):
    self: str
    tasks: str = Field(description="The tenant's tasks (each run is one).")


class ScheduleSummary(ScheduleSpecFields, ScheduleFlowFields):
    """A schedule as last written (`GET /schedules` lists these)."""

    id: str
    type: str
    input: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    temporal_schedule_id: str = Field(description="Its id in Temporal's UI and CLI.")
    links: ScheduleLinks


class ScheduleRunView(BaseModel):
    scheduled_at: datetime = Field(description="When the fire was due (jitter not included).")
    started_at: datetime = Field(description="When Temporal started it.")
    task_id: str | None = Field(description="The task this fire started.")


class ScheduleView(ScheduleSummary):
    """A schedule with what Temporal says of it now."""

    paused: bool
    note: str | None
    next_runs: list[datetime]
    recent_runs: list[ScheduleRunView]
    running_task_ids: list[str]
    runs: int = Field(description="Fires so far.")
    skipped_overlap: int = Field(description="Fires skipped by the overlap policy.")
    missed_catchup_window: int = Field(description="Fires missed beyond the catch-up window.")


class SchedulePageView(BaseModel):
    schedules: list[ScheduleSummary]
    next_cursor: str | None
