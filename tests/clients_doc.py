"""docs/clients.md's snippets, for the tests that run them as printed
(tests/e2e/test_clients_doc.py, tests/browser/test_stream_ends.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import ProcessStack
from tests.polling import until

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "clients.md"


def snippet(name: str) -> str:
    """The code block that follows `<!-- snippet: name -->` in docs/clients.md, on the
    lines it has there (blank lines before it), so a traceback points into the guide."""
    text = GUIDE.read_text("utf-8")
    found = re.search(rf"<!-- snippet: {name} -->\n```\w+\n(.*?)```", text, re.DOTALL)
    assert found, f"docs/clients.md has no {name} snippet"
    return "\n" * text.count("\n", 0, found.start(1)) + found.group(1)


async def finished_task(stack: ProcessStack) -> tuple[str, list[dict[str, Any]]]:
    """A short task, run to its end, and its events as stored."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        created = await client.post(
            "/tasks", json={"type": "demo.pipeline", "input": {"steps": 2, "step_seconds": 0.1}}
        )
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]

        async def completed() -> bool:
            return bool((await client.get(f"/tasks/{task_id}")).json()["status"] == "completed")

        await until(completed, within=60, what="the task completed")
        history = await client.get(f"/tasks/{task_id}/history")
    events: list[dict[str, Any]] = history.json()["events"]
    return task_id, events
