"""SIGTERM to an API with open streams: what deploy/k8s/ relies on for a rolling update.

The pod's preStop has taken it out of rotation; then SIGTERM. The open SSE stream must
end (not hang until the pod is killed), the process must exit cleanly within the pod's
terminationGracePeriodSeconds, and the client must resume on another API with
Last-Event-ID and miss nothing: every event once, in order, to the task's end.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import ProcessStack, api_beside, running_stack
from tests.k8s_manifests import BASE
from tests.sse import Frame, collect_events, payload, read_frames

pytestmark = pytest.mark.e2e


def grace_seconds() -> float:
    spec = yaml.safe_load((BASE / "api-deployment.yaml").read_text())
    return float(spec["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


@pytest.fixture(scope="module")
def two_apis(
    services: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ProcessStack, ProcessStack]]:
    log_dir = tmp_path_factory.mktemp("e2e-sigterm")
    with running_stack(services, log_dir) as first, api_beside(first, services, log_dir) as second:
        yield first, second


async def test_sigterm_ends_streams_and_they_resume_on_another_api(
    two_apis: tuple[ProcessStack, ProcessStack],
) -> None:
    first, second = two_apis
    seen: list[Frame] = []
    async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as client:
        response = await client.post(
            "/tasks",
            json={
                "type": "demo.pipeline",
                "input": {"steps": 3, "step_seconds": 2, "progress_ticks": 4},
            },
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        api = first.processes["api"]
        async with client.stream("GET", f"/tasks/{task_id}/events", timeout=60) as stream:
            assert stream.status_code == 200
            async for frame in read_frames(stream):
                if not frame.is_event:
                    continue
                seen.append(frame)
                if len(seen) == 2:  # the stream is live: stop the API under it
                    api.send_signal(signal.SIGTERM)
        # The loop ended: the stream was closed by the stopping API, not by the task's end.
        assert seen[-1].event != "task.completed.v1", "the task ended before the API stopped"
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught: the process
    # ends by that signal, after "Application shutdown complete" (the lifespan's close).
    assert api.wait(timeout=grace_seconds()) == -signal.SIGTERM
    log = (first.log_dir / "api.log").read_text(errors="replace")  # both APIs write it
    assert log.count("Application shutdown complete") == 1

    async with httpx.AsyncClient(base_url=second.base_url, timeout=30) as client:
        status, rest = await collect_events(
            client, f"/tasks/{task_id}/events", headers={"Last-Event-ID": seen[-1].id or "0"}
        )
    assert status == 200
    frames = seen + rest
    assert [int(f.id or 0) for f in frames] == list(range(1, len(frames) + 1))
    assert {payload(f)["subject"] for f in frames} == {task_id}
    assert frames[-1].event == "task.completed.v1"
