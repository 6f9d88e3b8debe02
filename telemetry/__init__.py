"""Logs, metrics and traces, configured once per process (docs/operations.md)."""

from telemetry.logs import bind_log_context, bound_log_context, configure_logging, log_context

__all__ = ["bind_log_context", "bound_log_context", "configure_logging", "log_context"]
