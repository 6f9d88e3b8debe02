"""The task page in headless Chromium: start, watch, steer, and survive an API restart.

Every assertion reads what the page shows (DOM state), and the event log is
compared line for line with the store's history (`GET /tasks/{id}/history`),
so a duplicated or missing line fails the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from schemas.workflow import workflow_id_for
from settings import Settings
from store import open_pool
from temporal.client import connect_client
from tests.e2e.conftest import ProcessStack
from tests.polling import until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "task-view.png"
TASK_URL = re.compile(r"#/tasks/[0-9a-f-]{36}$")
# Every value each step's <progress> takes, whatever the timing: its `value`
# attribute reflects the property the page sets.
RECORD_BAR_VALUES = """
window.barValues = [];
document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver((records) => {
    for (const record of records) {
      if (record.target.matches("#steps progress")) {
        window.barValues.push([record.target.id, Number(record.target.getAttribute("value"))]);
      }
    }
  }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["value"] });
});
"""


async def start_from_form(page: Page, stack: ProcessStack, task_type: str, task_input: Any) -> str:
    """Fill the form like a person would; returns the new task's id (from the URL)."""
    await page.goto(stack.base_url + "/")
    await page.get_by_label("Task type").select_option(task_type)
    await expect(page.get_by_label("Input (JSON)")).to_have_value(
        # the type's suggested input is filled in first
        json.dumps(await suggested_input(stack, task_type), indent=2)
    )
    await page.get_by_label("Input (JSON)").fill(json.dumps(task_input))
    await page.get_by_role("button", name="Start task").click()
    await expect(page).to_have_url(TASK_URL)  # the page switches to the new task's view
    return page.url.rsplit("/", 1)[-1]


async def suggested_input(stack: ProcessStack, task_type: str) -> Any:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        return (await http.get("/ui-config")).json()["task_types"][task_type]


async def history(stack: ProcessStack, task_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        response = await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
        return events


async def log_lines(page: Page) -> list[tuple[int, str]]:
    rows: list[list[str]] = await page.locator("#log li").evaluate_all(
        "items => items.map(li => [li.dataset.seq, li.dataset.type])"
    )
    return [(int(seq), event_type) for seq, event_type in rows]


async def assert_log_matches_history(page: Page, stack: ProcessStack, task_id: str) -> None:
    stored = await history(stack, task_id)
    assert await log_lines(page) == [(e["sequence"], e["type"]) for e in stored]


async def test_start_from_the_form_and_watch_the_bars_fill(
    page: Page, page_stack: ProcessStack
) -> None:
    await page.add_init_script(RECORD_BAR_VALUES)
    task_id = await start_from_form(
        page, page_stack, "demo.pipeline", {"steps": 3, "step_seconds": 0.6, "progress_ticks": 4}
    )
    steps = page.locator("#steps li")
    await expect(steps).to_have_count(3)
    await expect(page.locator("#task-status")).to_have_text("completed", timeout=20_000)
    # Each bar filled in steps as progress came (0 → 25 → … → 100), never backwards.
    recorded: list[list[Any]] = await page.evaluate("window.barValues")
    for index in range(1, 4):
        values = [value for bar, value in recorded if bar == f"step-bar-{index}"]
        assert values == sorted(values), values
        assert any(0 < value < 100 for value in values), values
        assert values[-1] == 100
    for index in range(3):
        await expect(steps.nth(index).locator("progress")).to_have_js_property("value", 100)
        await expect(steps.nth(index)).to_have_attribute("data-state", "completed")
    await expect(page.locator("#task-progress-text")).to_have_text("100%")
    for name in ("Pause", "Resume", "Cancel"):
        await expect(page.get_by_role("button", name=name)).to_be_disabled()
    link = page.get_by_role("link", name="Open in Temporal Web UI")
    await expect(link).to_have_attribute(
        "href", f"http://temporal-ui.test:8233/namespaces/default/workflows/task-{task_id}"
    )
    await expect(page.locator("#log li").last).to_have_attribute("data-type", "task.completed.v1")
    await assert_log_matches_history(page, page_stack, task_id)

    # Back to the list: the task is there, completed, at 100%.
    await page.get_by_role("link", name="← All tasks").click()
    row = page.locator(f'#task-list li[data-task-id="{task_id}"]')
    await expect(row).to_have_attribute("data-status", "completed")
    await expect(row.locator(".percent")).to_have_text("100%")


async def test_pause_and_resume_with_the_buttons(
    page: Page, page_stack: ProcessStack, tmp_path: Path
) -> None:
    task_id = await start_from_form(
        page, page_stack, "demo.pipeline", {"steps": 3, "step_seconds": 1.2, "progress_ticks": 2}
    )
    pause = page.get_by_role("button", name="Pause")
    resume = page.get_by_role("button", name="Resume")
    cancel = page.get_by_role("button", name="Cancel")
    await expect(pause).to_be_enabled(timeout=10_000)
    await expect(resume).to_be_disabled()
    await pause.click()
    # Pause takes effect at the next step boundary; the page says so meanwhile.
    await expect(pause).to_be_disabled()
    await expect(resume).to_be_enabled()
    await expect(page.locator("#task-status")).to_have_text("paused", timeout=10_000)
    await expect(cancel).to_be_enabled()
    paused_log = await log_lines(page)
    assert paused_log[-1][1] == "task.paused.v1"
    # The README's picture of the task view: a paused task, one step done.
    shot = tmp_path / "task-view.png"
    await page.set_viewport_size({"width": 960, "height": 640})
    await page.screenshot(path=str(shot), full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    await expect(pause).to_be_in_viewport()
    await page.screenshot(path=str(tmp_path / "task-view-phone.png"), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("TASKPLANE_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT)

    await resume.click()
    await expect(page.locator("#task-status")).to_have_text("completed", timeout=20_000)
    types = [event_type for _, event_type in await log_lines(page)]
    assert types.index("task.paused.v1") < types.index("task.resumed.v1")
    await assert_log_matches_history(page, page_stack, task_id)


async def test_cancel_with_the_button(page: Page, page_stack: ProcessStack) -> None:
    task_id = await start_from_form(
        page, page_stack, "demo.fanout", {"branches": 3, "max_parallel": 1, "step_seconds": 30}
    )
    cancel = page.get_by_role("button", name="Cancel")
    await expect(page.locator('#steps li[data-state="running"]')).to_have_count(1, timeout=10_000)
    await cancel.click()
    await expect(page.locator("#task-status")).to_have_text("cancelled", timeout=10_000)
    for name in ("Pause", "Resume", "Cancel"):
        await expect(page.get_by_role("button", name=name)).to_be_disabled()
    await expect(page.locator("#result")).to_be_visible()
    await assert_log_matches_history(page, page_stack, task_id)


async def test_the_log_survives_an_api_restart_mid_stream(
    page: Page, page_stack: ProcessStack
) -> None:
    """While the API is down an operator terminates the run in Temporal (the task could
    not end by itself before): the page resumes on the new API process with the events
    recorded meanwhile, none missing, none twice."""
    task_id = await start_from_form(
        page, page_stack, "demo.pipeline", {"steps": 3, "step_seconds": 30, "progress_ticks": 4}
    )
    await expect(page.locator('#steps li[data-state="running"]')).to_have_count(1, timeout=20_000)
    await asyncio.to_thread(page_stack.stop, "api")
    before = len(await log_lines(page))
    await expect(page.locator("#stream-state")).to_have_text("reconnecting")
    temporal = await connect_client(
        Settings(temporal_address=page_stack.env["TASKPLANE_TEMPORAL_ADDRESS"])
    )
    await temporal.get_workflow_handle(workflow_id_for(task_id)).terminate(reason="operator")
    pool = await open_pool(page_stack.env["TASKPLANE_DATABASE_URL"], min_size=1, max_size=1)
    try:

        async def terminal_event_stored() -> bool:
            async with pool.connection() as conn:
                row = await (
                    await conn.execute(
                        "SELECT count(*) FROM events WHERE task_id = %s"
                        " AND event_type LIKE 'task.terminated.%%'",
                        (task_id,),
                    )
                ).fetchone()
            return row is not None and row[0] > 0

        # The worker's reconciler records it while the API is down.
        await until(terminal_event_stored, within=30, what="task.terminated in the store")
    finally:
        await pool.close()
    page_stack.start("api")
    await asyncio.to_thread(page_stack.wait_ready)

    await expect(page.locator("#task-status")).to_have_text("terminated", timeout=30_000)
    await expect(page.locator("#stream-state")).to_have_text("ended")
    assert len(await log_lines(page)) > before  # events recorded during the outage came
    await assert_log_matches_history(page, page_stack, task_id)


async def test_list_updates_live(page: Page, page_stack: ProcessStack) -> None:
    await page.goto(page_stack.base_url + "/")
    async with httpx.AsyncClient(base_url=page_stack.base_url) as http:
        created = await http.post(
            "/tasks", json={"type": "demo.pipeline", "input": {"steps": 2, "step_seconds": 0.5}}
        )
    task_id = created.json()["task_id"]
    row = page.locator(f'#task-list li[data-task-id="{task_id}"]')
    await expect(row).to_be_visible(timeout=10_000)  # appeared without a reload
    await expect(row).to_have_attribute("data-status", "completed", timeout=20_000)
    await expect(row.locator(".percent")).to_have_text("100%")
