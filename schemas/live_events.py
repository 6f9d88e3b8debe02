"""Events that task code writes through the authoring API (docs/task-types.md):
task-level progress, live metadata, and chunks of output streams.

Registered with the rest of the catalogue in `schemas.registry`; the same rules
hold (fields may be added with defaults within a version, never removed).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from schemas.events import EventData

# The task's merged metadata may take at most this many bytes of JSON (the store refuses
# a patch that would grow it past this: `MetadataTooLargeError`). Migration 0010 holds
# the same number; a unit test keeps the two equal.
MAX_METADATA_BYTES = 16 * 1024
# The error type (Temporal `ApplicationError.type`) of a refused metadata patch.
METADATA_TOO_LARGE = "MetadataTooLarge"
# A stream name: short, and safe in a URL, a log line and a CSS selector.
STREAM_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

_STEP = "The step (1-based index) whose code wrote it; null for workflow code."
_ATTEMPT = (
    "The step attempt that wrote it; null for workflow code. Output and metadata of an"
    " attempt that failed (`task.step.failed.v1` with the same `index` and `attempt`) are"
    " not part of the task's final state."
)


class TaskProgressV1(EventData):
    """Task code reported how far the whole task got (`progress(...)` in workflow code).
    Step code reports `task.step.progress.v1` instead."""

    event_type = "task.progress.v1"
    percent: float = Field(ge=0, le=100, description="How much of the task is done, 0 to 100.")
    message: str | None = Field(default=None, description="A human-readable status line.")


class TaskMetadataUpdatedV1(EventData):
    """Task code merged a patch into the task's live metadata (`set_metadata(...)`).

    Merge rule: each top-level key of `patch` replaces the key in the metadata, and a
    `null` value removes it. The merged metadata is in `GET /tasks/{id}` and in the
    stream's snapshot frame."""

    event_type = "task.metadata.updated.v1"
    patch: dict[str, Any] = Field(description="Top-level keys to set (`null`: remove the key).")
    step: int | None = Field(default=None, ge=1, description=_STEP)
    attempt: int | None = Field(default=None, ge=1, description=_ATTEMPT)


class TaskOutputV1(EventData):
    """A chunk of an output stream (`emit_output(...)`): text, or JSON items.

    Under load many small writes travel in one event: `text` is their concatenation,
    `items` their list. A stream's content is its chunks in `sequence` order, leaving
    out the chunks of attempts that failed (see `attempt`)."""

    event_type = "task.output.v1"
    stream: str = Field(pattern=STREAM_NAME_PATTERN, description="The stream's name.")
    text: str | None = Field(default=None, description="Text written (null: `items` instead).")
    items: list[Any] | None = Field(
        default=None, description="JSON values written, in order (null: `text` instead)."
    )
    offset: int = Field(
        ge=0,
        description="How many characters (text) or items this writer (the step attempt, or"
        " the workflow) had written to the stream before this chunk.",
    )
    step: int | None = Field(default=None, ge=1, description=_STEP)
    attempt: int | None = Field(default=None, ge=1, description=_ATTEMPT)
