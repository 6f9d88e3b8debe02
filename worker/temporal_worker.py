"""The Temporal worker: every workflow and activity, and the sandbox they run in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import (
    PollerBehaviorSimpleMaximum,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkerDeploymentConfig,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.admission import AdmissionActivities
from activities.chat import ChatActivities
from activities.control import ControlActivities
from activities.deferral import DeferralActivities
from activities.demo import DemoActivities
from activities.opening import OpeningActivities
from activities.recorder import EventRecorder
from activities.recording import RecordingActivities
from activities.schedules import ScheduleActivities
from schemas.plugins import TaskTypePlugin, register_input_models
from settings import Settings, get_settings
from temporal.interceptors import LogContextInterceptor
from workflows import approval as _approval_runner  # noqa: F401 - registers `demo.approval`
from workflows import chat as _chat_runner  # noqa: F401 - registers `demo.chat`
from workflows.debounce import DebounceWorkflow
from workflows.deferral import DeferralNoticeWorkflow
from workflows.registry import register_runner
from workflows.scheduled import ScheduledTaskWorkflow
from workflows.task_workflow import TaskWorkflow

# Our own pure modules and pydantic are imported once, not per workflow run.
SANDBOX_PASSTHROUGH = (
    "schemas",
    "pydantic",
    # The registry's state (built-in and plugin runners) must be the worker's, not a
    # fresh copy per run; runners are deterministic functions, safe to share.
    "workflows.registry",
    "workflows.context",
    "workflows.demo",
    "workflows.chat",
    "workflows.approval",
    # `wait_for_input` and the exception a runner catches: one class, in and out.
    "workflows.waiting",
    # TaskWorkflow's base classes and constants: deterministic, no module-level state;
    # re-executing them for every run cost ~20 % of a run's sandbox set-up (issue 15).
    "workflows.policies",
    "workflows.control",
    "workflows.inputs",
    "workflows.admission",
    "workflows.recording",
    # Never used by workflow code, but a redis-py pool collected by the garbage collector
    # on a workflow thread imports redis and OpenTelemetry modules from its `__del__`:
    # inside the sandbox that re-executes them in the run's own module table.
    "redis",
    "opentelemetry",
)


def workflow_runner(extra_passthrough: Sequence[str] = ()) -> SandboxedWorkflowRunner:
    """The sandbox, with our pass-through modules: what the replay tests run every stored
    history through (a non-deterministic call fails them), and `workflow_sandbox=true`."""
    modules = (*SANDBOX_PASSTHROUGH, *extra_passthrough)
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules)
    )


def production_runner(sandboxed: bool, extra_passthrough: Sequence[str] = ()) -> WorkflowRunner:
    """What the workers run workflows in (`TASKPLANE_WORKFLOW_SANDBOX`, off by default).

    Without the sandbox a run costs the worker 7-17 ms less CPU (issue 15): no module
    table built per run, no call into the sandbox for every payload encoded or decoded.
    What it gives up is the run-time guard (a clock, random or I/O call in workflow code
    raising at once); the replay tests keep that guard for every stored history."""
    if sandboxed:
        return workflow_runner(extra_passthrough)
    return UnsandboxedWorkflowRunner()


@dataclass(frozen=True, slots=True)
class WorkflowPolling:
    """How many workflow-task polls a worker keeps open, and the share of them on the task
    queue (`TASKPLANE_WORKER_WORKFLOW_POLLS`, `TASKPLANE_WORKER_NEW_RUN_POLL_SHARE`).

    A new task's first workflow task lands on the task queue, later ones on the worker's
    sticky queue. The SDK's 5 polls and 0.2 share leave one poll for every new run;
    10 and 0.5 took a quiet tenant's first-step p99 under another tenant's flood from a
    median of 357 to 282 ms (docs/flow-control.md, "Workflow-task polls")."""

    behavior: PollerBehaviorSimpleMaximum
    new_run_share: float


def workflow_polling(settings: Settings) -> WorkflowPolling:
    return WorkflowPolling(
        PollerBehaviorSimpleMaximum(settings.worker_workflow_polls),
        settings.worker_new_run_poll_share,
    )


def build_worker(
    client: Client,
    recorder: EventRecorder,
    *,
    task_queue: str,
    shutdown_grace: timedelta = timedelta(seconds=10),
    max_cached_workflows: int = 1000,
    plugins: Sequence[TaskTypePlugin] = (),
    pool: AsyncConnectionPool | None = None,
    admission: AdmissionActivities | None = None,
    task_slots: int | None = None,
    activity_slots: int | None = None,
    deployment_config: WorkerDeploymentConfig | None = None,
    sandboxed: bool = False,
    polling: WorkflowPolling | None = None,
) -> Worker:
    """The Temporal worker with every workflow and activity; tests build theirs here too.

    With the store's `pool`, it also runs schedules' runs (workflows/scheduled.py).
    `deployment_config` makes it one version of a Worker Deployment (docs/deploys.md);
    None keeps it unversioned. `sandboxed`: `TASKPLANE_WORKFLOW_SANDBOX` (`production_runner`).
    `polling`: `workflow_polling`'s, by default from the process's settings."""
    polling = polling or workflow_polling(get_settings())
    plugin_activities: list[Callable[..., Any]] = []
    workflows: list[type] = [TaskWorkflow, DebounceWorkflow, DeferralNoticeWorkflow]
    if pool is not None:
        workflows.append(ScheduledTaskWorkflow)
        plugin_activities.append(ScheduleActivities(pool).claim)
    for plugin in plugins:
        register_runner(plugin.name, plugin.runner, concurrency=plugin.concurrency)
        plugin_activities.extend(plugin.activities(recorder))
    register_input_models(plugins)
    # Tasks with a concurrency limit need these (workflows/admission.py).
    admission_activities: list[Callable[..., Any]] = (
        [admission.acquire, admission.release] if admission is not None else []
    )
    # A run's first and last local activity (activities/opening.py).
    opening = OpeningActivities(recorder, admission)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=[
            RecordingActivities(recorder).record_event,
            opening.open_task,
            opening.close_task,
            DeferralActivities(recorder).record,
            DemoActivities(recorder).run_step,
            ChatActivities(recorder).answer,
            ControlActivities(client).request_cancellation,
            *plugin_activities,
            *admission_activities,
        ],
        workflow_runner=production_runner(
            sandboxed, [m for p in plugins for m in p.sandbox_modules]
        ),
        interceptors=[LogContextInterceptor()],  # tracing, when on, comes with the client
        graceful_shutdown_timeout=shutdown_grace,
        max_cached_workflows=max_cached_workflows,
        # Fewer tasks held inside the worker keep the backlog in Temporal's matching,
        # where fairness orders it (docs/flow-control.md#fairness); None: the SDK's 100.
        max_concurrent_workflow_tasks=task_slots,
        workflow_task_poller_behavior=polling.behavior,
        nonsticky_to_sticky_poll_ratio=polling.new_run_share,
        # Activities and local activities: `activity_slots` (None: the SDK's 100), apart
        # from the workflow-task slots (settings.worker_activity_slots says why).
        max_concurrent_activities=activity_slots,
        max_concurrent_local_activities=activity_slots,
        deployment_config=deployment_config,
        # Heartbeats reach the server at least every second, so a cancel (which
        # rides on the heartbeat response) stops a step within about a second.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        default_heartbeat_throttle_interval=timedelta(seconds=1),
    )
