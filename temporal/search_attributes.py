"""Custom search attributes that make tasks findable in the Temporal Web UI and CLI.

A constants-only module: workflows import it (passed through the sandbox).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TASK_STATUS = SearchAttributeKey.for_keyword("TaskStatus")
TASK_TYPE = SearchAttributeKey.for_keyword("TaskType")

ALL_KEYS = (TASK_STATUS, TASK_TYPE)
