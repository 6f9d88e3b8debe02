"""The worker's metrics endpoint, on the real store: task counts and publish latency."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid

import httpx

from settings import Settings
from tests.metrics_text import sample
from worker.runtime import WorkerRuntime


async def test_the_worker_serves_task_counts_and_publish_latency(
    database_url: str, redis_url: str, temporal_address: str
) -> None:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        task_queue=f"metrics-{uuid.uuid4().hex[:8]}",
        worker_metrics_port=0,
        worker_metrics_temporal_port=None,
        metrics_refresh_seconds=0.1,
        # Its reconciler would record endings of other tests' runs (same namespace and
        # store) through the same recorder: this test counts that recorder's publishes.
        reconcile_enabled=False,
    )
    async with WorkerRuntime(settings) as runtime, httpx.AsyncClient(timeout=5) as http:
        assert runtime.metrics_server is not None
        url = f"http://127.0.0.1:{runtime.metrics_server.port}/metrics"
        # The counts appear with the first refresh of the store-read gauges.
        deadline = time.monotonic() + 10
        while True:
            before = (await http.get(url)).text
            if "taskplane_tasks{" in before or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        completed_before = sample(before, "taskplane_tasks", status="completed")
        assert completed_before is not None  # every status is exported, zero or not
        # This runtime's own histogram: nothing else in the process records into it.
        assert sample(before, "taskplane_event_publish_seconds_count", outcome="ok") is None

        task_id = str(uuid.uuid4())
        for event_id, event_type, data in (
            ("c", "task.created.v1", {"task_type": "demo.pipeline", "input": {}}),
            ("d", "task.completed.v1", {"result": {}}),
        ):
            await runtime.recorder.record(
                event_id=f"{task_id}-{event_id}", task_id=task_id, event_type=event_type,
                data=data,
            )  # fmt: skip

        deadline = time.monotonic() + 10
        while True:
            text = (await http.get(url)).text
            completed = sample(text, "taskplane_tasks", status="completed")
            if completed == completed_before + 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert completed == completed_before + 1
    published = sample(text, "taskplane_event_publish_seconds_count", outcome="ok", path="recorder")
    assert published == 2
    assert sample(text, "taskplane_durable_dead_lettered_total") is not None
    assert (sample(text, "taskplane_db_pool_size") or 0) >= 1  # the pool the worker holds
    assert "process_resident_memory_bytes" in text


async def test_a_worker_whose_metrics_port_is_taken_refuses_to_start(
    database_url: str, redis_url: str, temporal_address: str
) -> None:
    """Two workers on one host with the same port: the second says so and exits, instead
    of running tasks that nobody can watch."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "TASKPLANE_DATABASE_URL": database_url,
            "TASKPLANE_REDIS_URL": redis_url,
            "TASKPLANE_TEMPORAL_ADDRESS": temporal_address,
            "TASKPLANE_TASK_QUEUE": f"taken-{uuid.uuid4().hex[:8]}",
            "TASKPLANE_WORKER_METRICS_PORT": str(port),
            "TASKPLANE_WORKER_METRICS_TEMPORAL_PORT": "0",
        }
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "worker",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(worker.communicate(), 60)
    assert worker.returncode == 1
    text = output.decode()
    assert "worker not started" in text
    assert f"127.0.0.1:{port} is taken" in text
    assert "TASKPLANE_WORKER_METRICS_PORT" in text
