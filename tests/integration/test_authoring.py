"""The authoring API from workflow code and step code (tests/plugin_live.py), on real
Temporal, Postgres and Redis: the events, the live state the store keeps (metadata,
output lengths), and the metadata cap as a clear, typed failure from either side."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.recorder import EventRecorder
from schemas.live_fold import fold
from schemas.workflow import TaskWorkflowInput, TaskWorkflowResult
from store import EventStore
from store.live_state import LiveStateReader
from tests.plugin_live import PLUGIN
from worker.temporal_worker import build_worker, workflow_runner
from workflows.task_workflow import TaskWorkflow


async def run_report(
    temporal_address: str, recorder: EventRecorder, task_input: dict[str, Any]
) -> tuple[str, TaskWorkflowResult | WorkflowFailureError]:
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    queue = f"authoring-{uuid.uuid4().hex[:8]}"
    task_id = str(uuid.uuid4())
    async with build_worker(client, recorder, task_queue=queue, plugins=[PLUGIN]):
        try:
            result = await client.execute_workflow(
                "TaskWorkflow",
                TaskWorkflowInput(task_id=task_id, task_type=PLUGIN.name, input=task_input),
                id=f"task-{task_id}",
                task_queue=queue,
                result_type=TaskWorkflowResult,
            )
        except WorkflowFailureError as failure:
            return task_id, failure
    return task_id, result


async def events_of(pool: AsyncConnectionPool, task_id: str) -> list[dict[str, Any]]:
    return [orjson.loads(e.envelope_json) for e in await EventStore(pool).history(task_id)]


async def test_workflow_and_step_code_write_progress_metadata_and_output(
    temporal_address: str, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id, result = await run_report(temporal_address, recorder, {"pages": 30})
    assert isinstance(result, TaskWorkflowResult)
    assert result.result == {"pages": 30, "words": 100 * 30 * 31 // 2}
    events = await events_of(pool, task_id)
    state = fold(events)
    assert state.output_text("log") == "report started\n" + "".join(
        f"page {n}\n" for n in range(1, 31)
    )
    items = [i for e in events if e["type"] == "task.output.v1" for i in e["data"]["items"] or []]
    assert items == [{"page": n, "words": 100 * n} for n in range(1, 31)]
    assert state.metadata == {"pages_read": 30, "words": result.result["words"]}
    # Coalesced: fewer events than writes (30 pages x 4 writes), none lost (above).
    written = [
        e for e in events if e["data"].get("step") == 1 or e["type"].startswith("task.step.")
    ]
    assert len(written) < 30 * 4
    # The workflow's own writes say no step; the step's say which attempt.
    workflow_log = next(e for e in events if e["type"] == "task.output.v1")
    assert (workflow_log["data"]["step"], workflow_log["data"]["attempt"]) == (None, None)
    assert events[-2]["type"] == "task.progress.v1"
    assert events[-2]["data"] == {"percent": 100.0, "message": "report ready"}
    live = await LiveStateReader(pool).get(task_id)
    assert live is not None
    assert live.metadata == state.metadata
    assert (
        live.output_lengths
        == state.output_lengths()
        == {"log": len(state.output_text("log")), "pages": 30}
    )
    assert live.record.last_seq == events[-1]["sequence"]
    assert live.record.progress == pytest.approx(state.progress) == 100.0
    # Workflow code's writes replay: the same commands, the offsets rebuilt the same way.
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    history = await client.get_workflow_handle(f"task-{task_id}").fetch_history()
    replayer = Replayer(
        workflows=[TaskWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(PLUGIN.sandbox_modules),
    )
    assert (await replayer.replay_workflow(history)).replay_failure is None


@pytest.mark.parametrize("side", ["step", "workflow"])
async def test_metadata_past_its_cap_fails_the_task_with_a_typed_error(
    side: str, temporal_address: str, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id, result = await run_report(temporal_address, recorder, {"pages": 2, "overflow": side})
    assert isinstance(result, WorkflowFailureError)
    events = await events_of(pool, task_id)
    failed = events[-1]
    assert failed["type"] == "task.failed.v1"
    assert "metadata would be" in failed["data"]["error"]
    assert "more than the 16384 bytes allowed" in failed["data"]["error"]
    live = await LiveStateReader(pool).get(task_id)
    assert live is not None
    assert "a" not in live.metadata or "b" not in live.metadata  # the cap held
