"""Logging (and, later, metrics and traces) configured once per process."""

from telemetry.logs import bind_log_context, configure_logging, log_context

__all__ = ["bind_log_context", "configure_logging", "log_context"]
