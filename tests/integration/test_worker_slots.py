"""The worker's slots as the settings give them to the SDK (`build_worker`).

`TASKPLANE_WORKER_TASK_SLOTS` caps workflow tasks; `TASKPLANE_WORKER_ACTIVITY_SLOTS`
(default 100, whatever the task slots) caps activities and local activities on their
own, so a tenant whose limit fills the workflow-task slots' worth of long steps cannot
hold every activity slot.
"""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client

from activities.recorder import EventRecorder
from settings import Settings
from temporal.converter import data_converter
from worker.temporal_worker import build_worker


@pytest.fixture(scope="module")
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, data_converter=data_converter)


def _slots(settings: Settings, client: Client, recorder: EventRecorder) -> tuple[int, int, int]:
    worker = build_worker(
        client,
        recorder,
        task_queue=f"slots-{uuid.uuid4().hex[:8]}",
        task_slots=settings.worker_task_slots,
        activity_slots=settings.worker_activity_slots,
    )
    config = worker.config()
    return (
        config["max_concurrent_workflow_tasks"] or 0,
        config["max_concurrent_activities"] or 0,
        config["max_concurrent_local_activities"] or 0,
    )


async def test_activity_slots_apart_from_workflow_task_slots(
    client: Client, recorder: EventRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKPLANE_WORKER_TASK_SLOTS", "10")
    monkeypatch.setenv("TASKPLANE_WORKER_ACTIVITY_SLOTS", "100")
    assert _slots(Settings(), client, recorder) == (10, 100, 100)


async def test_activity_slots_default_to_the_sdks_100_whatever_the_task_slots(
    client: Client, recorder: EventRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKPLANE_WORKER_TASK_SLOTS", "10")
    monkeypatch.delenv("TASKPLANE_WORKER_ACTIVITY_SLOTS", raising=False)
    assert _slots(Settings(), client, recorder) == (10, 100, 100)
