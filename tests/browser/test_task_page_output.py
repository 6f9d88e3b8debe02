"""The task page shows what task code writes: `demo.chat`'s answer streams into its
output box token by token, the metadata follows, and a page opened late (the snapshot,
then the history) shows the same answer as the task's result."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.browser.test_task_page import history, log_lines, start_from_form
from tests.e2e.conftest import ProcessStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ANSWER = 'pre[data-stream="answer"]'


async def task(stack: ProcessStack, task_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        body: dict[str, Any] = (await http.get(f"/tasks/{task_id}")).json()
        return body


async def test_the_answer_streams_into_the_page(page: Page, page_stack: ProcessStack) -> None:
    await page.add_init_script(
        "window.answerLengths = [];"
        "document.addEventListener('DOMContentLoaded', () => new MutationObserver(() => {"
        f"  const pre = document.querySelector('{ANSWER}');"
        "  if (pre) window.answerLengths.push(pre.textContent.length);"
        "}).observe(document.body, {subtree: true, childList: true, characterData: true}));"
    )
    task_id = await start_from_form(
        page, page_stack, "demo.chat", {"tokens": 60, "token_seconds": 0.04}
    )
    await expect(page.locator("#task-status")).to_have_text("completed", timeout=30_000)
    done = await task(page_stack, task_id)
    answer = done["result"]["answer"]
    await expect(page.locator(ANSWER)).to_have_text(answer)
    lengths: list[int] = await page.evaluate("window.answerLengths")
    assert len(set(lengths)) > 2  # it grew in steps as chunks came, not all at once
    assert lengths == sorted(lengths)
    metadata = json.loads(await page.locator("#metadata").text_content() or "{}")
    assert metadata == done["metadata"] == {"tokens": 60, "model": "taskplane-demo-1"}
    # Output chunks are shown in the output box, not as log lines; the rest is the log.
    stored = [e for e in await history(page_stack, task_id) if e["type"] != "task.output.v1"]
    assert await log_lines(page) == [(e["sequence"], e["type"]) for e in stored]

    # A page opened after the end shows the same answer and metadata.
    await page.reload()
    await expect(page.locator(ANSWER)).to_have_text(answer, timeout=10_000)
    assert json.loads(await page.locator("#metadata").text_content() or "{}") == metadata
