"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl

from schemas.tasks import TaskStatus


class WebhookSpec(BaseModel):
    url: HttpUrl
    secret: str | None = Field(default=None, pattern=r"^whsec_[A-Za-z0-9+/=]+$")
    events: list[str] | None = None


class WebhookView(BaseModel):
    """A task's webhook as created; `secret` only when the server generated it."""

    url: str
    events: list[str] | None = Field(description="Event types sent; null: every type.")
    secret: str | None = Field(default=None, exclude_if=lambda value: value is None)


class WebhookDeliveryView(BaseModel):
    event_id: str
    event_type: str
    sequence: int
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class WebhookStateView(BaseModel):
    url: str
    events: list[str] | None
    disabled_reason: str | None = None
    deliveries: list[WebhookDeliveryView]


class CreateTaskRequest(BaseModel):
    type: str = Field(min_length=1, examples=["demo.pipeline"])
    input: dict[str, Any] = Field(
        default_factory=dict, examples=[{"steps": 3, "step_seconds": 0.5}]
    )
    webhook: WebhookSpec | None = None
    concurrency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00]+$",
        description="Groups tasks for limits (start rates, concurrency); default: the tenant."
        " A task over its type's concurrency limit is `queued` until a slot frees"
        " (docs/flow-control.md).",
    )
    priority: int = Field(
        default=3, ge=1, le=5, description="1 runs first, 5 last: queued order and Temporal's"
    )

    def fingerprint_fields(self) -> dict[str, Any]:
        """The body as the Idempotency-Key compares it: flow-control fields at their
        defaults left out, so a key used before they existed names the same request."""
        defaults = {"concurrency_key": None, "priority": 3}
        body = self.model_dump(mode="json")
        return {k: v for k, v in body.items() if k not in defaults or v != defaults[k]}


class TaskLinks(BaseModel):
    self: str
    events: str
    history: str


class CreateTaskResponse(BaseModel):
    task_id: str
    workflow_id: str
    status: TaskStatus
    links: TaskLinks
    webhook: WebhookView | None = Field(default=None, exclude_if=lambda value: value is None)


class TaskView(BaseModel):
    task_id: str
    type: str | None
    status: TaskStatus
    progress: float
    created_at: datetime
    updated_at: datetime
    result: dict[str, Any] | None = None
    error: str | None = None
    workflow_task_failing_since: datetime | None = Field(
        default=None,
        description="Set while Temporal shows the task's workflow task failing again and"
        " again (the task cannot move: see the worker's logs and the Temporal Web UI);"
        " cleared by the task's next event.",
    )


class TaskPageView(BaseModel):
    tasks: list[TaskView]
    next_cursor: str | None


class ControlResponse(BaseModel):
    task_id: str
    status: TaskStatus
