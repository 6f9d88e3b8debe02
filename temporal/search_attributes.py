"""Custom search attributes that make tasks findable in the Temporal Web UI and CLI.

A constants-only module: workflows import it (passed through the sandbox), the
worker registers what a namespace lacks, and the local dev server is started
with the same list.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TASK_STATUS = SearchAttributeKey.for_keyword("TaskStatus")
TASK_TYPE = SearchAttributeKey.for_keyword("TaskType")
# The step a task is on (1-based), e.g. `temporal workflow list --query "TaskStep >= 3"`.
TASK_STEP = SearchAttributeKey.for_int("TaskStep")

ALL_KEYS = (TASK_STATUS, TASK_TYPE, TASK_STEP)

# name → the CLI's type name, for `temporal server start-dev --search-attribute`.
CLI_TYPES = {TASK_STATUS.name: "Keyword", TASK_TYPE.name: "Keyword", TASK_STEP.name: "Int"}
