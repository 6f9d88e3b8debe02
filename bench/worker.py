"""The bench's Temporal worker: production workflows and activities plus the bench's own.

Built with the production worker's settings (`worker.temporal_worker`: the same workflow
runner, `TASKPLANE_WORKFLOW_SANDBOX`, the sandbox's pass-through modules when it is on,
workflow cache, heartbeat throttling), so a variant differs from production only in what
it names (or in its runner: `sandboxed`, for the `*_sandboxed` diagnostics).

`python -m bench.worker` runs it as a process of its own (the latency part's
Workflow Streams side), configured by the same `TASKPLANE_*` variables as
`python -m worker`.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.demo import DemoActivities
from activities.recorder import EventRecorder
from activities.recording import RecordingActivities
from bench.activities import noop_step, streamed_chat_step, streamed_step
from bench.failures import ActivityFailures
from bench.workflows import (
    BareWorkflow,
    EmitEveryEventWorkflow,
    StreamedChatWorkflow,
    StreamedPipelineWorkflow,
)
from settings import get_settings
from worker.temporal_worker import production_runner, workflow_polling
from workflows.task_workflow import TaskWorkflow


def bench_worker(
    client: Client,
    recorder: EventRecorder,
    *,
    task_queue: str,
    failures: ActivityFailures | None = None,
    sandboxed: bool | None = None,
) -> Worker:
    if sandboxed is None:
        sandboxed = get_settings().workflow_sandbox
    polling = workflow_polling(get_settings())
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[
            TaskWorkflow,
            BareWorkflow,
            EmitEveryEventWorkflow,
            StreamedPipelineWorkflow,
            StreamedChatWorkflow,
        ],
        activities=[
            RecordingActivities(recorder).record_event,
            DemoActivities(recorder).run_step,
            noop_step,
            streamed_step,
            streamed_chat_step,
        ],
        # Production's runner (`TASKPLANE_WORKFLOW_SANDBOX`) unless the variant names one.
        workflow_runner=production_runner(sandboxed),
        graceful_shutdown_timeout=timedelta(seconds=5),
        max_cached_workflows=1000,
        workflow_task_poller_behavior=polling.behavior,
        nonsticky_to_sticky_poll_ratio=polling.new_run_share,
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        default_heartbeat_throttle_interval=timedelta(seconds=1),
        interceptors=[failures] if failures is not None else [],
    )


async def _main() -> None:
    from bench.recorders import NoIoRecorder
    from telemetry import configure_logging
    from temporal.client import connect_client

    settings = get_settings()
    configure_logging(settings.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await connect_client(settings)
    # This process only runs the Workflow Streams side: nothing goes to the store.
    async with bench_worker(client, NoIoRecorder(), task_queue=settings.task_queue):
        await stop.wait()


def main() -> None:
    from telemetry.exit import exit_now

    asyncio.run(_main())
    exit_now(0)


if __name__ == "__main__":
    main()
