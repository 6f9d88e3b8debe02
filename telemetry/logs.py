"""One logging configuration: JSON lines off a terminal, key=value on one.

Ids an operator follows a task by (`task_id`, `event_type`, `sequence`, …) are
bound in a context variable, so every line logged while handling that task
carries them without passing them by hand; `extra={...}` adds per-line fields.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

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


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = log_context()
    fields.update(
        {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and v is not None}
    )
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
    # Chatty libraries stay at warning unless asked.
    for name in ("httpx", "httpcore", "temporalio.activity", "uvicorn.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
