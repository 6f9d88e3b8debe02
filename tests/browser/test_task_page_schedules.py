"""The task page lists the tenant's schedules (api/static/schedules.js) and steers them."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import ProcessStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_the_page_lists_a_schedule_and_resumes_it(
    page: Page, page_stack: ProcessStack
) -> None:
    schedule_id = f"page-{uuid.uuid4().hex[:8]}"
    body = {
        "id": schedule_id,
        "type": "demo.pipeline",
        "input": {"steps": 1},
        "cron": "0 3 * * *",
        "paused": True,
    }
    async with httpx.AsyncClient(base_url=page_stack.base_url, timeout=30) as http:
        assert (await http.post("/schedules", json=body)).status_code == 201
        try:
            await page.goto(page_stack.base_url + "/")
            item = page.locator(f'#schedule-list li[data-schedule-id="{schedule_id}"]')
            await expect(item).to_contain_text("demo.pipeline, cron 0 3 * * *")
            await expect(item.locator(".status")).to_have_text("paused")
            await item.get_by_role("button", name="Resume").click()
            await expect(item.locator(".status")).to_have_text("active")
            assert (await http.get(f"/schedules/{schedule_id}")).json()["paused"] is False
        finally:
            await http.delete(f"/schedules/{schedule_id}")
