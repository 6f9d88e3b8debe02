"""How a stream ends, in Chromium: docs/clients.md's EventSource snippet, and the task
page showing a run an operator terminated in Temporal.

The reconciler records such an ending as `task.terminated.v1`; the page reads the
stream at the newest version of each type, so it gets (and shows) the upcast
`task.terminated.v2`, while `?version=stored` still serves what was recorded.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from schemas.workflow import workflow_id_for
from settings import Settings
from temporal.client import connect_client
from tests.clients_doc import finished_task, snippet
from tests.e2e.conftest import ProcessStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_the_eventsource_snippet_ends_at_the_terminal_event_then_meets_the_204(
    page: Page, page_stack: ProcessStack
) -> None:
    task_id, stored = await finished_task(page_stack)
    await page.goto(page_stack.base_url + "/")  # the snippet's fetch and EventSource: same origin
    follow = (
        "async (url) => {\n" + snippet("browser") + "\n"
        "  const seen = [];\n"
        "  const how = await follow(url, (event) => seen.push(event));\n"
        "  return [how, seen];\n"
        "}"
    )
    url = f"/tasks/{task_id}/events"
    how, seen = await page.evaluate(follow, url)
    assert [how, seen] == ["ended", stored]
    # Asked after the last event: the 204, which makes the browser give up (CLOSED).
    assert await page.evaluate(follow, f"{url}?after={stored[-1]['sequence']}") == ["closed", []]


async def test_the_page_shows_a_terminated_run_from_the_upcast_event(
    page: Page, page_stack: ProcessStack
) -> None:
    async with httpx.AsyncClient(base_url=page_stack.base_url, timeout=30) as client:
        created = await client.post(
            "/tasks", json={"type": "demo.pipeline", "input": {"steps": 3, "step_seconds": 30}}
        )
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        await page.goto(f"{page_stack.base_url}/#/tasks/{task_id}")
        await expect(page.locator('#steps li[data-state="running"]')).to_have_count(
            1, timeout=20_000
        )
        temporal = await connect_client(
            Settings(temporal_address=page_stack.env["TASKPLANE_TEMPORAL_ADDRESS"])
        )
        await temporal.get_workflow_handle(workflow_id_for(task_id)).terminate(
            reason="stopped by the operator"
        )
        # The worker's reconciler records the ending within seconds.
        await expect(page.locator("#task-status")).to_have_text("terminated", timeout=30_000)
        await expect(page.locator("#result")).to_have_text("stopped by the operator")
        last_line = page.locator("#log li").last
        await expect(last_line).to_have_attribute("data-type", "task.terminated.v2")

        stored: list[dict[str, Any]] = (
            await client.get(f"/tasks/{task_id}/history", params={"version": "stored"})
        ).json()["events"]
        served: list[dict[str, Any]] = (await client.get(f"/tasks/{task_id}/history")).json()[
            "events"
        ]
    assert stored[-1]["type"] == "task.terminated.v1"
    assert served[-1]["type"] == "task.terminated.v2"
    assert served[-1]["data"]["timed_out"] is False
    assert served[-1]["id"] == stored[-1]["id"]
