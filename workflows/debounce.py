"""`DebounceWorkflow`: creations inside a period collapse into one task (schemas/debounce.py).

Deterministic: the window's clock is `workflow.now()` and its timer the
`wait_condition` timeout, reset by every accepted creation.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas.debounce import (
        DEBOUNCE_CLOSED,
        DEBOUNCE_WORKFLOW,
        MAX_LISTED_CREATIONS,
        UPDATE_DEBOUNCE,
        DebounceAnswer,
        DebounceCreation,
        DebouncedCreation,
        DebounceResult,
        DebounceStart,
        DebounceSummary,
    )
    from schemas.tasks import TaskStatus
    from schemas.workflow import (
        MEMO_REQUEST_HASH,
        MEMO_REQUEST_NONCE,
        MEMO_TASK_TYPE,
        TASK_STATUS,
        TASK_TYPE,
        TASK_WORKFLOW,
        TaskWorkflowInput,
        workflow_id_for,
    )


@workflow.defn(name=DEBOUNCE_WORKFLOW)
class DebounceWorkflow:
    def __init__(self) -> None:
        self._task_id: str | None = None
        self._latest: DebounceCreation | None = None
        self._collapsed = 0
        self._creations: list[DebouncedCreation] = []
        self._closed = False

    @workflow.run
    async def run(self, start: DebounceStart) -> DebounceResult:
        period = timedelta(seconds=start.period_seconds)
        await workflow.wait_condition(lambda: self._latest is not None)
        while True:
            seen = self._collapsed
            try:
                await workflow.wait_condition(
                    lambda seen=seen: self._collapsed != seen,  # type: ignore[misc]
                    timeout=period,
                )
            except TimeoutError:
                break
        self._closed = True
        latest, task_id = self._latest, self._task_id
        if latest is None or task_id is None:  # the first update set both: a bug
            raise RuntimeError("a debounce window closed with no creation")
        summary = DebounceSummary(
            key=start.key,
            period_seconds=start.period_seconds,
            collapsed=self._collapsed,
            creations=self._creations,
        )
        await workflow.start_child_workflow(
            TASK_WORKFLOW,
            TaskWorkflowInput(
                task_id=task_id,
                task_type=start.task_type,
                input=latest.input,
                owner=start.tenant,
                debounced=summary,
            ),
            id=workflow_id_for(task_id),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            memo={
                MEMO_REQUEST_HASH: latest.request_hash,
                MEMO_REQUEST_NONCE: latest.request_nonce,
                MEMO_TASK_TYPE: start.task_type,
            },
            # As `TaskClient.start` sets them (temporal/tasks.py, start_search_attributes).
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TASK_TYPE, start.task_type),
                    SearchAttributePair(TASK_STATUS, TaskStatus.RUNNING.value),
                ]
            ),
            static_summary=f"{start.task_type} task {task_id} (debounced)",
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return DebounceResult(task_id=task_id, collapsed=self._collapsed)

    @workflow.update(name=UPDATE_DEBOUNCE)
    def debounce(self, creation: DebounceCreation) -> DebounceAnswer:
        if self._task_id is None:
            self._task_id = creation.task_id
        self._latest = creation
        self._collapsed += 1
        if len(self._creations) < MAX_LISTED_CREATIONS:
            self._creations.append(
                DebouncedCreation(at=workflow.now(), request_nonce=creation.request_nonce)
            )
        return DebounceAnswer(task_id=self._task_id, collapsed=self._collapsed)

    @debounce.validator
    def _open(self, creation: DebounceCreation) -> None:
        if self._closed:
            raise ApplicationError("the window is starting its task", type=DEBOUNCE_CLOSED)
