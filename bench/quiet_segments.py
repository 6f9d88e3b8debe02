"""Where every quiet task's time to first step went, segment by segment (part `flow`).

The slowest quiet task's history (`slowest_quiet_history_ms`) shows one task; a p99 of
twenty is that task, so one stall decides it. This splits each quiet task's time into
the stretches that different parts of the stack own, and reports each stretch's
median and maximum over the tasks, so a run says which part grew under the flood:

- `post`: its `POST /tasks` sent → answered (the API, and the store's checks);
- `to_start`: sent → `WorkflowExecutionStarted` (the API's start request reaching Temporal);
- `poll`: the first workflow task scheduled → started (waiting for a worker's poll);
- `first_workflow_task`: that task started → completed (the worker: the run's opening
  local activity, `task.created.v1` and its claim, then its commands);
- `to_activity`: that completion → the first step's `ActivityTaskStarted`;
- `step_event`: the activity started → its `task.step.started.v1` recorded;
- `created`: sent → `task.created.v1` recorded; `total`: sent → first step recorded.

Times are the Temporal server's event times and the store's `recorded_at`, all on this
machine's one clock.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from bench.flow_probes import history_after
from bench.stats import percentile

# (segment, from, to): history event names, or "sent" / "step" / "created".
SEGMENTS = (
    ("to_start", "sent", "WORKFLOW_EXECUTION_STARTED"),
    ("poll", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED"),
    ("first_workflow_task", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"),
    ("to_activity", "WORKFLOW_TASK_COMPLETED", "ACTIVITY_TASK_STARTED"),
    ("step_event", "ACTIVITY_TASK_STARTED", "step"),
    ("created", "sent", "created"),
    ("total", "sent", "step"),
)


async def _first_times(client: Client, task_id: str, sent_at: float) -> dict[str, float]:
    """Seconds after `sent_at` of the first of each history event, up to the first step's
    activity starting."""
    times: dict[str, float] = {}
    async for name, after in history_after(client, task_id, sent_at):
        times.setdefault(name, after)
        if name == "ACTIVITY_TASK_STARTED":
            break
    return times


async def quiet_segments(
    client: Client,
    sent: dict[str, float],
    answered: dict[str, float],
    stepped: dict[str, float],
    created: dict[str, float],
) -> dict[str, dict[str, float]]:
    """Per segment, the median and the maximum (ms) over the quiet tasks that stepped.

    `sent`: each task's `POST` time (epoch seconds); `answered`, `stepped`, `created`:
    seconds after it (the answer, the first `task.step.started.v1`, `task.created.v1`).
    """
    spans: dict[str, list[float]] = {"post": [answered[t] for t in stepped if t in answered]}
    for task_id, step_at in stepped.items():
        times = await _first_times(client, task_id, sent[task_id])
        times.update(sent=0.0, step=step_at)
        if task_id in created:
            times["created"] = created[task_id]
        for name, begin, end in SEGMENTS:
            if begin in times and end in times:
                spans.setdefault(name, []).append(times[end] - times[begin])
    return {name: _summary(values) for name, values in spans.items() if values}


def _summary(seconds: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(seconds, 50) * 1000, 1),
        "max": round(max(seconds) * 1000, 1),
    }


def render_segments(segments: dict[str, Any]) -> str:
    """One line: `segment p50/max` in ms, in the order of the stack."""
    order = ["post", *(name for name, _, _ in SEGMENTS)]
    parts = [
        f"{name} {segments[name]['p50']:g}/{segments[name]['max']:g}"
        for name in order
        if name in segments
    ]
    return "quiet ms p50/max: " + ", ".join(parts)
