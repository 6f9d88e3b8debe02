"""docs/clients.md's Python and Node snippets, run exactly as printed, on the real stack.

Each follows a short task to its terminal event and returns its last sequence;
asked again after that sequence it meets the `204` and returns at once, having
handled nothing. The Node one needs only `node` (no package; tests/node_tools.py:
skipped locally without it, a failure in CI).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients_doc import GUIDE, finished_task, snippet
from tests.e2e.conftest import ProcessStack
from tests.node_tools import node_executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_the_python_snippet_follows_to_the_end_then_meets_the_204(
    stack: ProcessStack,
) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(snippet("python"), str(GUIDE), "exec"), namespace)
    follow = namespace["follow"]
    task_id, stored = await finished_task(stack)

    def run(after: int) -> tuple[int, list[dict[str, Any]]]:
        handled: list[dict[str, Any]] = []
        with httpx.Client(base_url=stack.base_url, timeout=httpx.Timeout(10, read=60)) as client:
            return follow(client, task_id, handled.append, after), handled

    last, handled = await asyncio.to_thread(run, 0)
    assert handled == stored
    assert last == stored[-1]["sequence"]
    assert handled[-1]["type"] == "task.completed.v1"
    assert await asyncio.to_thread(run, last) == (last, [])  # the 204


async def test_the_node_snippet_follows_to_the_end_then_meets_the_204(
    stack: ProcessStack, tmp_path: Path
) -> None:
    node = node_executable()
    script = tmp_path / "follow.mjs"
    script.write_text(snippet("node"), "utf-8")
    task_id, stored = await finished_task(stack)

    done = await asyncio.to_thread(
        subprocess.run,
        [node, str(script), stack.base_url, task_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == stored
    assert done.stderr.strip() == f"over after sequence {stored[-1]['sequence']}"

    # Imported as a module, asked after the last sequence: the 204, nothing handled.
    again = (
        f"import {{ follow }} from {json.dumps(script.as_uri())};\n"
        "const handled = [];\n"
        f"const last = await follow({json.dumps(stack.base_url)}, {json.dumps(task_id)},"
        f" (event) => handled.push(event), {stored[-1]['sequence']});\n"
        "console.log(JSON.stringify({ last, handled }));\n"
    )
    (tmp_path / "again.mjs").write_text(again, "utf-8")
    done = await asyncio.to_thread(
        subprocess.run,
        [node, str(tmp_path / "again.mjs")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"last": stored[-1]["sequence"], "handled": []}
