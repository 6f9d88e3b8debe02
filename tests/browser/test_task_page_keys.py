"""The task page against an API that requires keys: it asks for one, and streams with
short-lived stream tokens (the client's `tasks.watch`), minting a fresh one when the
API refuses the one it has (here: an API restart drew a new token secret)."""

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
from playwright.async_api import Page, Request, Response, expect

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
    refused: list[str] = []  # stream requests the API answered 401

    def on_request(request: Request) -> None:
        if EVENTS_URL.search(request.url):
            streams.append(request.url)

    def on_response(response: Response) -> None:
        if EVENTS_URL.search(response.url) and response.status == 401:
            refused.append(response.url)

    page.on("request", on_request)
    page.on("response", on_response)
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

    # A task that waits for an input until we send it: it is still running after the
    # restart, whatever the machine's speed, so the stream must go on there.
    await page.get_by_label("Task type").select_option("demo.approval")
    await page.get_by_label("Input (JSON)").fill(json.dumps({"step_seconds": 0.2}))
    await page.get_by_role("button", name="Start task").click()
    await expect(page.locator("#task-status")).to_have_text("waiting", timeout=20_000)
    task_id = page.url.rsplit("/", 1)[-1]

    # A restart gives the API a new token secret: the old token is refused from now on.
    await asyncio.to_thread(keyed_api.stop, "api")
    keyed_api.start("api")
    await asyncio.to_thread(keyed_api.wait_ready)

    async with httpx.AsyncClient(
        base_url=keyed_api.base_url, headers={"Authorization": f"Bearer {KEY}"}
    ) as http:
        sent = await http.post(f"/tasks/{task_id}/inputs/approve", json={"approved": True})
        assert sent.status_code == 202, sent.text
        await expect(page.locator("#task-status")).to_have_text("completed", timeout=30_000)
        stored = (await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()
    lines = await page.locator("#log li").evaluate_all(
        "items => items.map(li => [Number(li.dataset.seq), li.dataset.type])"
    )
    assert lines == [[e["sequence"], e["type"]] for e in stored["events"]]

    queries = [parse_qs(urlsplit(url).query) for url in streams]
    assert len(queries) >= 2, streams  # the restart forced a reconnection
    assert all("token" in q for q in queries)  # a stream never goes without one
    assert all("Authorization" not in q for q in queries)
    tokens = [q["token"][0] for q in queries]
    assert len(set(tokens)) >= 2, tokens  # the new API process needed a new token
    assert refused, "the restarted API never refused the old token"
    for url in refused:  # a token refused once is never sent again
        token = parse_qs(urlsplit(url).query)["token"][0]
        last_use = max(i for i, used in enumerate(tokens) if used == token)
        assert streams[last_use] in refused, (token, streams)
    assert "after" not in queries[0]
    assert all(int(q["after"][0]) > 0 for q in queries[1:])  # resumed, not restarted
