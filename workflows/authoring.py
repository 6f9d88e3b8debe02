"""The authoring API for workflow code (a runner): `progress`, `set_metadata`,
`emit_output`, with the same names and arguments as in step code
(`activities.authoring`), so a task type reads the same wherever it writes from.

Each call records one event through the workflow's `_emit` path (a local activity,
under the emit lock, with an id from `workflow.uuid4()`): exactly once however often
the workflow replays, in order with the task's other events. Each call is therefore a
local activity and a marker in the workflow's history: write progress and output
often from a step, where writes are coalesced and cost no history, and from workflow
code only at milestones.
"""

from __future__ import annotations

import json
import re
import weakref
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from schemas.live_events import MAX_METADATA_BYTES, METADATA_TOO_LARGE, STREAM_NAME_PATTERN
from workflows.context import StepContext

_STREAM_NAME = re.compile(STREAM_NAME_PATTERN)
# Per workflow instance: characters (or items) written to each stream so far. Rebuilt
# by replay like any workflow state, since the same calls run again in the same order.
_OFFSETS: weakref.WeakKeyDictionary[object, dict[str, int]] = weakref.WeakKeyDictionary()


def _context() -> StepContext:
    instance = workflow.instance()
    if not callable(getattr(instance, "emit_event", None)):
        raise RuntimeError("call this from a Taskplane task runner (workflow code)")
    context: StepContext = instance
    return context


async def progress(fraction: float, message: str | None = None) -> None:
    """How far the whole task got, 0.0 to 1.0 (`task.progress.v1`)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"progress is a fraction from 0 to 1, not {fraction}")
    data = {"percent": round(fraction * 100, 3), "message": message}
    await _context().emit_event("task.progress.v1", data)


async def set_metadata(patch: dict[str, Any]) -> None:
    """Merge `patch` into the task's metadata: top-level keys replace, `None` removes."""
    if not isinstance(patch, dict):
        raise TypeError("set_metadata takes a JSON object (a dict)")
    size = len(json.dumps(patch, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise ApplicationError(
            f"task metadata would be {size} bytes, more than the {MAX_METADATA_BYTES} allowed",
            type=METADATA_TOO_LARGE,
            non_retryable=True,
        )
    await _context().emit_event("task.metadata.updated.v1", {"patch": patch})


async def emit_output(chunk: Any, stream: str = "default") -> None:
    """Append to an output stream: a `str` is text, anything else one JSON item."""
    if not _STREAM_NAME.match(stream):
        raise ValueError(f"invalid stream name {stream!r} ({STREAM_NAME_PATTERN})")
    context = _context()
    offsets = _OFFSETS.setdefault(context, {})
    offset = offsets.get(stream, 0)
    text, items = (chunk, None) if isinstance(chunk, str) else (None, [chunk])
    offsets[stream] = offset + (len(chunk) if isinstance(chunk, str) else 1)
    data = {"stream": stream, "text": text, "items": items, "offset": offset}
    await context.emit_event("task.output.v1", data)
