"""The task page answers a task that waits for an input: the form in the task view,
built from the input's JSON Schema (a refused value shows the API's reason), and
the page behind a one-time link, which needs no key."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import ProcessStack, api_beside
from tests.polling import until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TASK_URL = re.compile(r"#/tasks/[0-9a-f-]{36}$")
KEY = "acme-inputs-page-key-0123456789"


async def history_types(stack: ProcessStack, task_id: str, key: str | None = None) -> list[Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=stack.base_url, headers=headers) as http:
        page = await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})
    return [(e["type"], e["data"]) for e in page.json()["events"]]


async def test_the_task_view_shows_a_form_for_a_waiting_input(
    page: Page, page_stack: ProcessStack
) -> None:
    await page.goto(page_stack.base_url + "/")
    await page.get_by_label("Task type").select_option("demo.approval")
    await page.get_by_label("Input (JSON)").fill(json.dumps({"step_seconds": 0.2}))
    await page.get_by_role("button", name="Start task").click()
    await expect(page).to_have_url(TASK_URL)
    task_id = page.url.rsplit("/", 1)[-1]
    await expect(page.locator("#task-status")).to_have_text("waiting", timeout=20_000)
    form = page.locator('#inputs form[data-input="approve"]')
    await expect(form).to_be_visible()
    await expect(form).to_contain_text("Approve this task?")
    await form.get_by_label("comment").fill("ship it")
    await form.get_by_label("approved").check()
    await form.get_by_role("button", name="Send approve").click()
    await expect(page.locator("#task-status")).to_have_text("completed", timeout=20_000)
    await expect(form).to_have_count(0)  # gone once the task took it
    await expect(page.locator("#result")).to_contain_text("ship it")
    events = await history_types(page_stack, task_id)
    received = [data for kind, data in events if kind == "task.input.received.v1"]
    assert received == [
        {
            "name": "approve",
            "value": {"approved": True, "comment": "ship it"},
            "timed_out": False,
            "via": "api",
            "delivery_id": received[0]["delivery_id"],
        }
    ]
    # The page's log shows the same events as the store, in order.
    logged = await page.locator("#log li").evaluate_all("items => items.map(i => i.dataset.type)")
    assert logged == [kind for kind, _ in events]


@pytest.fixture
def keyed_api(page_stack: ProcessStack, services: Any, tmp_path: Path) -> Iterator[ProcessStack]:
    with api_beside(
        page_stack, services, tmp_path, api_keys=f"acme:{KEY}", stream_token_secret="k" * 32
    ) as api:
        yield api


async def test_a_one_time_link_opens_a_form_with_no_key(
    page: Page, keyed_api: ProcessStack
) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=keyed_api.base_url, headers=auth) as http:
        created = await http.post(
            "/tasks", json={"type": "demo.approval", "input": {"step_seconds": 0}}
        )
        task_id = created.json()["task_id"]

        async def waiting() -> bool:
            status: str = (await http.get(f"/tasks/{task_id}")).json()["status"]
            return status == "waiting"

        await until(waiting, within=30, what="the task to wait for its input")
        link = (await http.post(f"/tasks/{task_id}/inputs/approve/link")).json()
    await page.goto(link["url"])
    view = page.locator("#input-link-view")
    await expect(view).to_be_visible()
    await expect(page.locator("#key-panel")).to_be_hidden()  # no key asked for
    await expect(view).to_contain_text(task_id)
    await view.get_by_label("approved").check()
    await view.get_by_role("button", name="Send approve").click()
    await expect(page.locator("#link-done")).to_contain_text("Sent")
    types = [kind for kind, _ in await history_types(keyed_api, task_id, KEY)]
    assert "task.input.received.v1" in types
    await page.reload()
    await expect(page.locator("#link-done")).to_contain_text("used already")
