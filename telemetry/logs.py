"""One logging configuration: JSON lines off a terminal, key=value on one.

Ids an operator follows a task by (`task_id`, `workflow_id`, `event_type`,
`sequence`, `request_id`, …) are bound in a context variable, so every line
logged while handling that task carries them without passing them by hand;
`extra={...}` adds per-line fields. Lines of Temporal's `workflow.logger` and
`activity.logger` have their ids lifted to the same top-level fields, and a line
logged inside a sampled span carries its `trace_id` and `span_id`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from temporalio import activity, workflow

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "taskplane_log_context", default=None
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def log_context() -> dict[str, Any]:
    return dict(_context.get() or {})


def bind_log_context(**fields: Any) -> None:
    """Add fields to the current context (an asyncio task inherits a copy)."""
    _context.set({**(_context.get() or {}), **fields})


@contextmanager
def bound_log_context(**fields: Any) -> Iterator[None]:
    """Add fields for the body only (a request, an activity), then restore the context."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


# What Temporal's logger adapters put on a record (`temporal_workflow`/`temporal_activity`
# dicts), lifted to the field names every other line uses.
_TEMPORAL_FIELDS = {
    "temporal_workflow": {
        "workflow_id": "workflow_id",
        "run_id": "run_id",
        "workflow_type": "workflow_type",
    },
    "temporal_activity": {
        "workflow_id": "workflow_id",
        "activity_type": "activity_type",
        "activity_id": "activity_id",
        "attempt": "attempt",
    },
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = log_context()
    for key, value in record.__dict__.items():
        if key in _STANDARD_ATTRS or value is None:
            continue
        lifted = _TEMPORAL_FIELDS.get(key)
        if lifted is not None and isinstance(value, dict):
            fields.update({lifted[k]: v for k, v in value.items() if k in lifted})
        else:
            fields[key] = value
    span = trace.get_current_span().get_span_context()
    if span.is_valid and span.trace_flags.sampled:
        fields["trace_id"] = format(span.trace_id, "032x")
        fields["span_id"] = format(span.span_id, "016x")
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        text = f"{record.levelname[0]} {record.name}: {record.getMessage()}"
        text = f"{text} {extras}" if extras else text
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


def configure_logging(level: str = "INFO", *, json_lines: bool | None = None) -> None:
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_temporal_loggers()
    # Chatty libraries stay at warning unless asked.
    for name in ("httpx", "httpcore", "temporalio.activity", "uvicorn.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def quiet_temporal_loggers() -> None:
    """Temporal's workflow and activity loggers: ids as fields (see `_fields`), not
    appended to every message as well."""
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
