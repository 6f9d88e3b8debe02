"""The claim a task's workflow input makes on its key: the same for the API (which
parks a task when its key is full) and the workflow (which claims before its first
step). Apart from schemas/admission.py, which the store imports: this one needs the
workflow's input model."""

from __future__ import annotations

from schemas.admission import AdmissionRequest
from schemas.workflow import TaskWorkflowInput


def admission_claim(request: TaskWorkflowInput) -> AdmissionRequest | None:
    """None: the task's type has no limit, so it takes no slot."""
    if request.concurrency_limit is None or request.concurrency_key is None:
        return None
    return AdmissionRequest(
        task_id=request.task_id,
        task_type=request.task_type,
        concurrency_key=request.concurrency_key,
        tenant=request.owner or "default",
        limit=request.concurrency_limit,
        strategy=request.concurrency_strategy,
        priority=request.priority,
    )
