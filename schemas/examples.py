"""One realistic `data` per event type: the examples in the AsyncAPI document
and docs, and the fixtures the contract tests push through every check.

A test fails when a registered type has no example here, so a new type cannot
ship without one.
"""

from __future__ import annotations

from typing import Any

from schemas.envelope import schema_id

EXAMPLE_DATA: dict[str, dict[str, Any]] = {
    "task.created.v1": {
        "task_type": "demo.pipeline",
        "input": {"steps": 3, "step_seconds": 0.5},
        "owner": "alice",
    },
    "task.step.started.v1": {"index": 1, "name": "step-1", "attempt": 1, "total_steps": 3},
    "task.step.progress.v1": {
        "index": 1,
        "name": "step-1",
        "percent": 50.0,
        "message": "tick 2/4",
        "total_steps": 3,
        "attempt": 1,
    },
    "task.step.completed.v1": {
        "index": 1,
        "name": "step-1",
        "output": {"slept_seconds": 0.5, "ticks": 4},
        "duration_seconds": 0.503,
        "total_steps": 3,
        "attempt": 1,
    },
    "task.step.failed.v1": {
        "index": 2,
        "name": "step-2",
        "error": "step 2 failed as asked (fail_at_step=2)",
        "attempt": 1,
        "will_retry": False,
    },
    "task.queued.v1": {
        "concurrency_key": "acme",
        "position": 2,
        "limit": 5,
        "running": 5,
        "priority": 3,
    },
    "task.admitted.v1": {"concurrency_key": "acme", "waited_seconds": 12.5},
    "task.deferred.v1": {
        "until": "2026-12-04T10:00:30Z",
        "reason": "rate_limit",
        "rule": "type-m",
        "task_type": "demo.fanout",
    },
    "task.paused.v1": {"reason": "maintenance window"},
    "task.resumed.v1": {},
    "task.completed.v1": {"result": {"steps": 3}},
    "task.failed.v1": {"error": "step 2 failed as asked (fail_at_step=2)", "step": 2},
    "task.cancelled.v1": {"reason": "no longer needed"},
    "task.terminated.v1": {
        "reason": "stuck on a bad deploy",
        "close_status": "TERMINATED",
        "run_id": "5d0b7a4e-3f1c-4d2b-9e8a-1c2d3e4f5a6b",
        "identity": "ops@example.com",
    },
    "task.terminated.v2": {
        "reason": "stuck on a bad deploy",
        "close_status": "TERMINATED",
        "timed_out": False,
        "run_id": "5d0b7a4e-3f1c-4d2b-9e8a-1c2d3e4f5a6b",
        "identity": "ops@example.com",
    },
    "task.reset.v1": {
        "from_run_id": "5d0b7a4e-3f1c-4d2b-9e8a-1c2d3e4f5a6b",
        "to_run_id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
        "reset_point": "event 4 of run 5d0b7a4e-3f1c-4d2b-9e8a-1c2d3e4f5a6b",
        "reason": "re-run after the fix",
    },
    "task.progress.v1": {"percent": 40.0, "message": "4 of 10 pages read"},
    "task.metadata.updated.v1": {
        "patch": {"tokens": 42, "model": "taskplane-demo-1"},
        "step": 1,
        "attempt": 1,
    },
    "task.output.v1": {
        "stream": "answer",
        "text": " durable streams",
        "items": None,
        "offset": 120,
        "step": 1,
        "attempt": 1,
    },
    "task.input.requested.v1": {
        "name": "approve",
        "input_schema": {
            "title": "Approval",
            "type": "object",
            "properties": {
                "approved": {"type": "boolean"},
                "comment": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            },
            "required": ["approved"],
            "additionalProperties": False,
        },
        "deadline": "2026-01-03T03:04:05.678901Z",
        "prompt": "Approve this task?",
    },
    "task.input.received.v1": {
        "name": "approve",
        "value": {"approved": True, "comment": "looks good"},
        "timed_out": False,
        "via": "api",
        "delivery_id": "6f1c0e2a-9b8d-4c7e-a5f3-2d1e0c9b8a7f",
    },
}


def example_envelope(event_type: str) -> dict[str, Any]:
    """A whole serialized event of `event_type`, as a consumer receives it."""
    return {
        "specversion": "1.0",
        "id": "0b0f3c1e-7a5d-4f61-9a8e-2f0c1d2e3f40",
        "source": "/taskplane",
        "type": event_type,
        "subject": "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
        "time": "2026-01-02T03:04:05.678901Z",
        "datacontenttype": "application/json",
        "dataschema": schema_id(event_type),
        "data": EXAMPLE_DATA[event_type],
        "sequence": 1 if event_type == "task.created.v1" else 4,
    }
