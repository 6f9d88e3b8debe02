"""Concurrency keys (issue 24): the policy a task type declares, and what crosses the
Temporal boundary when a task asks for, waits for and gives back a slot of its key.

Pure data: the API reads a type's policy to decide whether a task goes through
admission at all (a type with no limit costs nothing), the workflow carries the
decision in its input, and the worker's admission activities (activities/admission.py)
take and release slots in Postgres (store/admission.py). docs/flow-control.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, Field

# What a new task does when its key has no free slot: wait in line (`queue`), give up
# (`cancel_newest`: it is cancelled), or take over (`cancel_in_progress`: the oldest
# running task of the key and every older waiter are cancelled, the newest runs).
Strategy = Literal["queue", "cancel_newest", "cancel_in_progress"]
STRATEGIES: Final[tuple[Strategy, ...]] = ("queue", "cancel_newest", "cancel_in_progress")
DEFAULT_PRIORITY: Final = 3

# Activities, and the signal that tells a queued task it holds a slot now.
ADMISSION_ACQUIRE: Final = "admission_acquire"
ADMISSION_RELEASE: Final = "admission_release"
SIGNAL_ADMITTED: Final = "admitted"


@dataclass(frozen=True)
class ConcurrencyPolicy:
    """At most `limit` tasks of the type run at once per concurrency key."""

    limit: int
    strategy: Strategy = "queue"

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"a concurrency limit is at least 1, not {self.limit}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown concurrency strategy {self.strategy!r}")


_POLICIES: dict[str, ConcurrencyPolicy] = {}


def register_concurrency(task_type: str, policy: ConcurrencyPolicy) -> None:
    """Declare a type's limit (its registration: `TaskTypePlugin.concurrency`, or
    `workflows.registry.register_runner(..., concurrency=...)`)."""
    existing = _POLICIES.get(task_type)
    if existing is not None and existing != policy:
        raise ValueError(f"task type {task_type!r} already declares {existing}")
    _POLICIES[task_type] = policy


def concurrency_policy(task_type: str, default_limit: int | None) -> ConcurrencyPolicy | None:
    """The type's own policy, else `TASKPLANE_CONCURRENCY_LIMIT` (queue), else none."""
    policy = _POLICIES.get(task_type)
    if policy is not None:
        return policy
    return ConcurrencyPolicy(default_limit) if default_limit is not None else None


class AdmissionRequest(BaseModel):
    """`admission_acquire`'s argument: the task asks for a slot of its key."""

    task_id: str
    task_type: str
    concurrency_key: str
    tenant: str
    limit: int = Field(ge=1)
    strategy: Strategy = "queue"
    priority: int = Field(default=DEFAULT_PRIORITY, ge=1, le=5)


class AdmissionDecision(BaseModel):
    """What `admission_acquire` decided: `admitted` (holds a slot), `queued` (waits for
    the `admitted` signal; `position` 1 = next in line), or `cancelled` (`reason`)."""

    outcome: Literal["admitted", "queued", "cancelled"]
    position: int | None = None
    running: int = 0
    reason: str | None = None


class AdmissionRelease(BaseModel):
    """`admission_release`'s argument: the task gives back its slot (or its place)."""

    task_id: str
