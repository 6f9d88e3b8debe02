"""The worker's slots and polls as the settings give them to the SDK (`build_worker`).

`TASKPLANE_WORKER_TASK_SLOTS` caps workflow tasks; `TASKPLANE_WORKER_ACTIVITY_SLOTS`
(default 100, whatever the task slots) caps activities and local activities on their
own, so a tenant whose limit fills the workflow-task slots' worth of long steps cannot
hold every activity slot. `TASKPLANE_WORKER_WORKFLOW_POLLS` (10) and
`TASKPLANE_WORKER_NEW_RUN_POLL_SHARE` (0.5) leave five polls for new runs' first
workflow tasks, where the SDK's defaults left one.
"""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum

from activities.recorder import EventRecorder
from settings import Settings
from temporal.converter import data_converter
from worker.temporal_worker import build_worker, workflow_polling


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


def _polling(settings: Settings, client: Client, recorder: EventRecorder) -> tuple[object, float]:
    worker = build_worker(
        client,
        recorder,
        task_queue=f"polls-{uuid.uuid4().hex[:8]}",
        polling=workflow_polling(settings),
    )
    config = worker.config()
    return config["workflow_task_poller_behavior"], config["nonsticky_to_sticky_poll_ratio"]


async def test_new_runs_get_half_of_ten_workflow_polls_by_default(
    client: Client, recorder: EventRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKPLANE_WORKER_WORKFLOW_POLLS", raising=False)
    monkeypatch.delenv("TASKPLANE_WORKER_NEW_RUN_POLL_SHARE", raising=False)
    assert _polling(Settings(), client, recorder) == (PollerBehaviorSimpleMaximum(10), 0.5)


async def test_workflow_polls_from_the_settings(
    client: Client, recorder: EventRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKPLANE_WORKER_WORKFLOW_POLLS", "4")
    monkeypatch.setenv("TASKPLANE_WORKER_NEW_RUN_POLL_SHARE", "0.25")
    assert _polling(Settings(), client, recorder) == (PollerBehaviorSimpleMaximum(4), 0.25)


def test_a_share_above_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKPLANE_WORKER_NEW_RUN_POLL_SHARE", "1.5")
    with pytest.raises(ValueError, match="worker_new_run_poll_share"):
        Settings()
