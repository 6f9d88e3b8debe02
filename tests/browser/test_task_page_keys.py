"""The task page against an API that requires keys: it asks for one, and streams with
short-lived stream tokens, minting a fresh one for every (re)connection."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Page, Request, expect

from tests.e2e.conftest import ProcessStack, api_beside

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KEY = "acme-page-test-key-0123456789"
EVENTS_URL = re.compile(r"/tasks/[0-9a-f-]{36}/events")


@pytest.fixture
def keyed_api(page_stack: ProcessStack, services: Any, tmp_path: Path) -> Iterator[ProcessStack]:
    """A second API process on the same servers and task queue, with keys required.

    No `stream_token_secret`: each process draws its own, so a restart invalidates
    every token minted before it, which is exactly what a page must survive."""
    with api_beside(
        page_stack, services, tmp_path, api_keys=f"acme:{KEY}", sse_retry_ms="300"
    ) as api:
        yield api


async def test_asks_for_a_key_then_streams_with_fresh_tokens(
    page: Page, keyed_api: ProcessStack
) -> None:
    streams: list[str] = []

    def on_request(request: Request) -> None:
        if EVENTS_URL.search(request.url):
            streams.append(request.url)

    page.on("request", on_request)
    async with httpx.AsyncClient(base_url=keyed_api.base_url) as http:
        config = (await http.get("/ui-config")).json()  # public: the page needs it first
    # Unset TASKPLANE_TEMPORAL_UI_URL: the host the browser reaches, on the UI's port.
    assert config["temporal_ui_url"] == "http://127.0.0.1:8233"
    await page.goto(keyed_api.base_url + "/")
    panel = page.locator("#key-panel")
    await expect(panel).to_be_visible()
    await page.get_by_role("textbox", name="API key").fill("not-the-key")
    await page.get_by_role("button", name="Use this key").click()
    await expect(page.locator("#key-reason")).to_contain_text("refused")
    await page.get_by_role("textbox", name="API key").fill(KEY)
    await page.get_by_role("button", name="Use this key").click()
    await expect(panel).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('taskplane.apiKey')") == KEY

    await page.get_by_label("Input (JSON)").fill(
        json.dumps({"steps": 3, "step_seconds": 0.8, "progress_ticks": 4})
    )
    await page.get_by_role("button", name="Start task").click()
    await expect(page.locator("#task-status")).to_have_text("running", timeout=10_000)
    task_id = page.url.rsplit("/", 1)[-1]
    await expect(page.locator("#log li").nth(3)).to_be_attached(timeout=10_000)

    # A restart gives the API a new token secret: the old token is refused from now on.
    await asyncio.to_thread(keyed_api.stop, "api")
    keyed_api.start("api")
    await asyncio.to_thread(keyed_api.wait_ready)

    await expect(page.locator("#task-status")).to_have_text("completed", timeout=30_000)
    async with httpx.AsyncClient(
        base_url=keyed_api.base_url, headers={"Authorization": f"Bearer {KEY}"}
    ) as http:
        stored = (await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()
    lines = await page.locator("#log li").evaluate_all(
        "items => items.map(li => [Number(li.dataset.seq), li.dataset.type])"
    )
    assert lines == [[e["sequence"], e["type"]] for e in stored["events"]]

    queries = [parse_qs(urlsplit(url).query) for url in streams]
    assert len(queries) >= 2, streams  # the restart forced a reconnection
    assert all("token" in q for q in queries)  # EventSource never goes without one
    tokens = [q["token"][0] for q in queries]
    assert len(set(tokens)) == len(tokens)  # a fresh token for every connection
    assert "after" not in queries[0]
    assert all(int(q["after"][0]) > 0 for q in queries[1:])  # resumed, not restarted
