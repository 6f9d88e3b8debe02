"""`@taskplane/client` in Node against the real stack: `tasks.watch` follows a task to
its end across an API SIGKILL and restart, with API keys (stream tokens, minted again
after the restart) and without, and delivers exactly the store's events, once each.

The API is a process of its own beside the session's stack (`api_beside`, its worker
runs the task), on a fixed port, so it can be killed and started again under the
same address while the Node client is reconnecting to it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients_doc import finished_task, snippet
from tests.e2e.conftest import ProcessStack, api_beside
from tests.node_tools import CLIENTS, built_clients

KEY = "key-of-the-js-client-0123456789"
# Long enough that the API is down while steps still run.
TASK = {"steps": 4, "step_seconds": 1.5, "progress_ticks": 2}
TERMINAL = {"task.completed.v1", "task.failed.v1", "task.cancelled.v1", "task.terminated.v2"}


class NodeWatcher:
    def __init__(self, node: str, base_url: str, api_key: str | None) -> None:
        args = [node, "tests/watch-task.mjs", base_url, json.dumps(TASK)]
        self.process = subprocess.Popen(
            [*args, *([api_key] if api_key else [])],
            cwd=CLIENTS,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []

    def next_line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        text = self.process.stdout.readline()
        if not text:
            self.process.wait(timeout=30)
            assert self.process.stderr is not None
            raise AssertionError(
                f"node exited {self.process.returncode}: {self.process.stderr.read()}"
            )
        line: dict[str, Any] = json.loads(text)
        self.lines.append(line)
        return line

    def until(self, predicate: Any) -> dict[str, Any]:
        while True:
            line = self.next_line()
            if predicate(line):
                return line

    def events(self) -> list[dict[str, Any]]:
        return [line["event"] for line in self.lines if "event" in line]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.mark.parametrize("keys", [False, True], ids=["open", "keys"])
def test_watch_to_the_end_across_an_api_kill_and_restart(
    keys: bool, stack: ProcessStack, services: Any, tmp_path: Path
) -> None:
    node = built_clients()
    settings = {"api_keys": f"js:{KEY}"} if keys else {}
    with api_beside(stack, services, tmp_path, sse_retry_ms="200", **settings) as api:
        watcher = NodeWatcher(node, api.base_url, KEY if keys else None)
        try:
            task_id = watcher.until(lambda line: "created" in line)["created"]
            watcher.until(lambda line: line.get("event", {}).get("type") == "task.step.started.v1")
            api.stop("api", kill=True)  # SIGKILL: no goodbye on the open stream
            api.start("api")
            api.wait_ready()
            watcher.until(lambda line: "end" in line)
            assert watcher.process.wait(timeout=60) == 0
        finally:
            watcher.close()
        headers = {"Authorization": f"Bearer {KEY}"} if keys else {}
        history = httpx.get(
            f"{api.base_url}/tasks/{task_id}/history", params={"limit": 1000}, headers=headers
        ).json()["events"]
    delivered = watcher.events()
    assert [e["sequence"] for e in delivered] == list(range(1, len(delivered) + 1))
    assert [e["id"] for e in delivered] == [e["id"] for e in history]  # all, once, in order
    assert delivered[-1]["type"] in TERMINAL
    snapshots = [line["snapshot"] for line in watcher.lines if "snapshot" in line]
    assert snapshots, "the server's snapshot frame never reached onSnapshot"
    assert all(0 <= s["last"] <= len(delivered) for s in snapshots)
    reconnects = [line["reconnect"] for line in watcher.lines if "reconnect" in line]
    assert reconnects, "the kill was never noticed"
    if keys:  # the token minted before the kill is refused by the new process: minted again
        assert "UnauthorizedError" in reconnects


def run_node(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


async def test_the_node_snippet_of_the_guide_runs_as_printed(stack: ProcessStack) -> None:
    """docs/clients.md's `@taskplane/client` example for Node, on a task that ended."""
    node = built_clients()
    task_id, events = await finished_task(stack)
    script = CLIENTS / "tests" / "build" / "guide-node.mjs"  # beside node_modules: resolves
    script.parent.mkdir(exist_ok=True)
    script.write_text(snippet("js-client-node"), "utf-8")
    done = await asyncio.to_thread(run_node, node, str(script), stack.base_url, task_id)
    assert done.returncode == 0, done.stderr
    expected = [
        f"step {e['data']['index']}: {e['data']['percent']}%"
        if e["type"] == "task.step.progress.v1"
        else f"{e['sequence']} {e['type']}"
        for e in events
    ]
    assert done.stdout.splitlines() == [*expected, "over"]
    nobody = "00000000-0000-4000-8000-000000000000"
    missing = await asyncio.to_thread(run_node, node, str(script), stack.base_url, nobody)
    assert missing.returncode == 0
    assert f"no task {nobody}" in missing.stderr


async def test_fold_task_agrees_with_the_servers_state(stack: ProcessStack) -> None:
    """foldTask over a demo.chat run whose first attempt fails mid-answer: its metadata,
    output lengths (the failed attempt's output left out) and status are the server's."""
    node = built_clients()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        chat = {"tokens": 8, "token_seconds": 0.02, "fail_after_tokens": 3}
        created = await http.post("/tasks", json={"type": "demo.chat", "input": chat})
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        script = str(CLIENTS / "tests" / "fold-task.mjs")
        done = await asyncio.to_thread(run_node, node, script, stack.base_url, task_id)
        assert done.returncode == 0, done.stderr
        server = (await http.get(f"/tasks/{task_id}")).json()
    folded = json.loads(done.stdout)
    assert folded["status"] == server["status"] == "completed"
    assert folded["last_sequence"] == server["last_sequence"]
    assert folded["metadata"] == server["metadata"]
    assert folded["outputs"] == {name: out["length"] for name, out in server["outputs"].items()}
    assert folded["outputs"], "demo.chat wrote no output"
    assert folded["progress"] == 100
