"""The authoring API for step code: `progress`, `set_metadata`, `emit_output`.

Inside a step activity, open a `StepWriter` (it also reports the step's lifecycle,
like `StepEvents`) and write through it, or through this module's functions, which
find the writer of the running step::

    async with StepWriter(recorder, task_id=..., index=1, name="answer") as step:
        await step.started()
        for token in tokens:
            await emit_output(token, stream="answer")
            await set_metadata({"tokens": n})
            await progress(n / total)
        await step.completed({"tokens": n}, duration)

Writes are coalesced (`activities.live_buffer`: one flush per 50 ms at most, many
chunks per event) and recorded like every step event: deterministic ids from the
attempt (`activities.identity`), so a retried recording dedupes, and every event says
its `step` and `attempt`, so the output of an attempt that failed is told apart
(docs/task-types.md, "Output streams"). `completed` and `failed` flush first, so
nothing a step wrote comes after its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
from types import TracebackType
from typing import Any

import orjson
import psycopg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.budget import budget_failure
from activities.identity import ActivityEventIds
from activities.live_buffer import LINGER_SECONDS, Batch
from activities.live_buffer import LiveBuffer as _Buffer
from activities.recorder import EventRecorder, NewEvent
from activities.steps import StepEvents
from schemas import InvalidEventError
from schemas.live_events import MAX_METADATA_BYTES, METADATA_TOO_LARGE, STREAM_NAME_PATTERN
from schemas.workflow import CHAPTER_CLOSED, INVALID_EVENT
from store.budget import EventBudgetExceededError
from store.events import ChapterClosedError
from store.live_state import METADATA_TOO_LARGE_SQLSTATE

OUTPUT_TOO_LARGE = "OutputTooLarge"
# Per event: text in characters (6 bytes each at worst, JSON-escaped, stays under the
# 64 KiB event cap), JSON items in serialized bytes.
MAX_EVENT_TEXT_CHARS = 8 * 1024
MAX_EVENT_ITEMS_BYTES = 32 * 1024
_STREAM_NAME = re.compile(STREAM_NAME_PATTERN)

_current: contextvars.ContextVar[StepWriter | None] = contextvars.ContextVar(
    "taskplane_step_writer", default=None
)


class MetadataTooLargeError(ApplicationError):
    """The task's metadata would be larger than its cap: the step fails for good."""

    def __init__(self, size: int | None, limit: int = MAX_METADATA_BYTES) -> None:
        what = f"{size} bytes" if size is not None else "too large"
        super().__init__(
            f"task metadata would be {what}, more than the {limit} bytes allowed",
            type=METADATA_TOO_LARGE,
            non_retryable=True,
        )


class OutputTooLargeError(ApplicationError):
    """One JSON item larger than an event can carry: split it, or link to it."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"an output item of {size} bytes is more than {MAX_EVENT_ITEMS_BYTES} allowed",
            type=OUTPUT_TOO_LARGE,
            non_retryable=True,
        )


class StepWriter:
    def __init__(
        self,
        recorder: EventRecorder,
        *,
        task_id: str,
        index: int,
        name: str,
        total_steps: int | None = None,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self.events = StepEvents(
            recorder, task_id=task_id, index=index, name=name, total_steps=total_steps or 1
        )
        self._recorder = recorder
        self._task_id = task_id
        self._info = activity.info()
        self._ids = ActivityEventIds(self._info)  # kinds output/metadata: none StepEvents uses
        self._where = {"step": index, "attempt": self._info.attempt}
        self._offsets: dict[str, int] = {}
        self._buffer = _Buffer(self._write, linger=linger)
        self._token: contextvars.Token[StepWriter | None] | None = None

    async def __aenter__(self) -> StepWriter:
        self._token = _current.set(self)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
        if exc is None:
            await self._buffer.close()
            return
        # The step is failing anyway: what it wrote still goes out if it can, and the
        # step's own error is the one that matters.
        with contextlib.suppress(Exception):
            await self._buffer.close()

    # --- the lifecycle (StepEvents), flushed first ---------------------------------------

    async def started(self) -> None:
        await self.events.started()

    async def completed(self, output: dict[str, Any], duration_seconds: float) -> None:
        await self._buffer.flush()
        await self.events.completed(output, duration_seconds)

    async def failed(self, error: str, *, will_retry: bool, attempt: int | None = None) -> None:
        if attempt is None or attempt == self._info.attempt:
            # The failure is what must be recorded; what the step wrote goes out if it can.
            with contextlib.suppress(Exception):
                await self._buffer.flush()
        await self.events.failed(error, will_retry=will_retry, attempt=attempt)

    # --- the authoring API ---------------------------------------------------------------

    async def progress(self, fraction: float, message: str | None = None) -> None:
        """How far this step got, 0.0 to 1.0 (`task.step.progress.v1`)."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress is a fraction from 0 to 1, not {fraction}")
        await self._buffer.progress(fraction, message)

    async def set_metadata(self, patch: dict[str, Any]) -> None:
        """Merge `patch` into the task's metadata: top-level keys replace, `None` removes."""
        if not isinstance(patch, dict):
            raise TypeError("set_metadata takes a JSON object (a dict)")
        size = len(orjson.dumps(patch))  # raises TypeError when it is not JSON
        if size > MAX_METADATA_BYTES:
            raise MetadataTooLargeError(size)
        await self._buffer.metadata(patch)

    async def emit_output(self, chunk: Any, stream: str = "default") -> None:
        """Append to an output stream: a `str` is text, anything else one JSON item."""
        if not _STREAM_NAME.match(stream):
            raise ValueError(f"invalid stream name {stream!r} ({STREAM_NAME_PATTERN})")
        if isinstance(chunk, str):
            await self._buffer.output(stream, text=chunk)
            return
        size = len(orjson.dumps(chunk))
        if size > MAX_EVENT_ITEMS_BYTES:
            raise OutputTooLargeError(size)
        await self._buffer.output(stream, item=chunk)

    async def flush(self) -> None:
        await self._buffer.flush()

    # --- recording -----------------------------------------------------------------------

    async def _write(self, batch: Batch) -> None:
        """One flush, recorded in ONE store transaction (`EventRecorder.record_many`):
        one commit and one round trip, so a flush takes about what one event takes."""
        events: list[NewEvent] = []
        for chunk in batch.chunks:
            for part in _split(chunk.text, chunk.items):
                offset = self._offsets.get(chunk.stream, 0)
                text, items = (part, None) if isinstance(part, str) else (None, part)
                data: dict[str, Any] = {
                    "stream": chunk.stream,
                    "text": text,
                    "items": items,
                    "offset": offset,
                }
                events.append(self._event("task.output.v1", self._ids.next("output"), data))
                self._offsets[chunk.stream] = offset + len(part)
        if batch.metadata is not None:
            data = {"patch": batch.metadata}
            events.append(self._event("task.metadata.updated.v1", self._ids.next("metadata"), data))
        if batch.progress is not None:
            fraction, message = batch.progress
            if (tick := self.events.progress_event(round(fraction * 100, 3), message)) is not None:
                events.append(tick)
        if events:
            await self._record(events)

    def _event(self, event_type: str, event_id: str, data: dict[str, Any]) -> NewEvent:
        return NewEvent(event_id, event_type, {**data, **self._where})

    async def _record(self, events: list[NewEvent]) -> None:
        # A store that blips gets two more tries with the same ids (the first may have
        # committed: the ids dedupe); past that the attempt fails and Temporal retries it.
        for delay in (0.2, 1.0, None):
            try:
                await self._recorder.record_many(
                    self._task_id, events, run_id=self._info.workflow_run_id
                )
                return
            except InvalidEventError as exc:
                raise ApplicationError(str(exc), type=INVALID_EVENT, non_retryable=True) from exc
            except ChapterClosedError as exc:
                raise ApplicationError(str(exc), type=CHAPTER_CLOSED, non_retryable=True) from exc
            except EventBudgetExceededError as exc:
                raise budget_failure(exc) from exc
            except psycopg.Error as exc:
                if exc.sqlstate == METADATA_TOO_LARGE_SQLSTATE:
                    raise MetadataTooLargeError(None) from exc
                if delay is None or not isinstance(exc, psycopg.OperationalError):
                    raise
                await asyncio.sleep(delay)


def _split(text: str | None, items: list[Any] | None) -> list[str] | list[list[Any]]:
    """A chunk cut into parts that each fit one event."""
    if text is not None:
        step = MAX_EVENT_TEXT_CHARS
        return [text[i : i + step] for i in range(0, len(text), step)] or [""]
    parts: list[list[Any]] = [[]]
    used = 0
    for item in items or ():
        size = len(orjson.dumps(item))
        if parts[-1] and used + size > MAX_EVENT_ITEMS_BYTES:
            parts.append([])
            used = 0
        parts[-1].append(item)
        used += size
    return parts


def current_writer() -> StepWriter:
    writer = _current.get()
    if writer is None:
        raise RuntimeError("no StepWriter is open: call this inside `async with StepWriter(...)`")
    return writer


async def progress(fraction: float, message: str | None = None) -> None:
    await current_writer().progress(fraction, message)


async def set_metadata(patch: dict[str, Any]) -> None:
    await current_writer().set_metadata(patch)


async def emit_output(chunk: Any, stream: str = "default") -> None:
    await current_writer().emit_output(chunk, stream)
