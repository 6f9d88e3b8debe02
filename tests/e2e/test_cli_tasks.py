"""`taskplane tasks …` against the real stack: output, `--json`, exit codes, and a
`watch` that resumes after the API process is restarted under it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli import exit_codes
from cli.main import main
from tests.e2e.conftest import ProcessStack, api_beside

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KEY = "cli-test-key-0123456789abcdef"


def taskplane(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed entry point as a script would run it (stdout is a pipe, not a TTY)."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "tasks", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **(env or {})},
        check=False,
    )


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    """In-process `main([...])` with `--json`; returns (exit code, parsed stdout)."""
    code = main(["tasks", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def history(base_url: str, task_id: str, key: str | None = None) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(
        f"{base_url}/tasks/{task_id}/history", params={"limit": 1000}, headers=headers
    )
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_create_and_watch_a_task_to_completion_as_json(stack: ProcessStack) -> None:
    result = taskplane(
        "create",
        "demo.pipeline",
        "--input",
        json.dumps({"steps": 2, "step_seconds": 0.2, "progress_ticks": 2}),
        "--watch",
        "--json",
        "--api",
        stack.base_url,
    )
    assert result.returncode == exit_codes.EXIT_OK, result.stderr
    envelopes = [json.loads(line) for line in result.stdout.splitlines()]
    task_id = envelopes[0]["subject"]
    assert envelopes == history(stack.base_url, task_id)  # every event once, in order
    assert envelopes[-1]["type"] == "task.completed.v1"


def test_plain_watch_show_and_list(stack: ProcessStack, capsys: pytest.CaptureFixture[str]) -> None:
    code, created = run_json(
        capsys, "create", "demo.fanout", "--input", '{"branches": 2}', "--api", stack.base_url
    )
    assert code == 0
    task_id = created["task_id"]

    watched = taskplane("watch", task_id, env={"TASKPLANE_API_URL": stack.base_url})
    assert watched.returncode == exit_codes.EXIT_OK, watched.stderr
    lines = watched.stdout.splitlines()
    stored = history(stack.base_url, task_id)
    # Not a TTY: one plain line per event (no ANSI redraws), then the outcome.
    assert [line.split()[:2] for line in lines[:-1]] == [
        [f"#{e['sequence']}", e["type"]] for e in stored
    ]
    assert lines[-1] == f"task {task_id} completed"
    assert "\x1b[" not in watched.stdout

    code, shown = run_json(capsys, "show", task_id, "--api", stack.base_url)
    assert (code, shown["status"], shown["progress"]) == (0, "completed", 100.0)
    code, listed = run_json(capsys, "list", "--type", "demo.fanout", "--api", stack.base_url)
    assert code == 0
    assert task_id in [task["task_id"] for task in listed["tasks"]]

    assert main(["tasks", "show", task_id, "--api", stack.base_url]) == 0
    assert "status:      completed" in capsys.readouterr().out


def test_exit_codes_tell_failed_cancelled_conflict_and_not_found(
    stack: ProcessStack, capsys: pytest.CaptureFixture[str]
) -> None:
    api = ("--api", stack.base_url)
    failing = json.dumps({"steps": 2, "step_seconds": 0, "fail_at_step": 1})
    assert main(["tasks", "create", "demo.pipeline", "--input", failing, "--watch", *api]) == (
        exit_codes.EXIT_FAILED
    )
    assert "task.failed.v1" in capsys.readouterr().out

    _, created = run_json(
        capsys, "create", "demo.pipeline", "--input", '{"steps": 3, "step_seconds": 30}', *api
    )
    task_id = created["task_id"]
    assert run_json(capsys, "pause", task_id, *api) == (
        0,
        {"task_id": task_id, "status": "paused"},
    )
    assert main(["tasks", "pause", task_id, *api]) == exit_codes.EXIT_CONFLICT  # already
    assert main(["tasks", "resume", task_id, *api]) == exit_codes.EXIT_OK
    assert main(["tasks", "cancel", task_id, *api]) == exit_codes.EXIT_OK
    assert main(["tasks", "watch", task_id, *api]) == exit_codes.EXIT_CANCELLED
    assert main(["tasks", "cancel", task_id, *api]) == exit_codes.EXIT_CONFLICT  # finished
    capsys.readouterr()

    missing = str(uuid.uuid4())
    assert main(["tasks", "show", missing, *api]) == exit_codes.EXIT_NOT_FOUND
    assert main(["tasks", "watch", missing, *api]) == exit_codes.EXIT_NOT_FOUND
    assert main(["tasks", "create", "no.such.type", *api]) == exit_codes.EXIT_USAGE
    assert main(["tasks", "create", "demo.pipeline", "--input", "{not json", *api]) == 2
    assert main(["tasks", "list", "--api", "http://127.0.0.1:9"]) == exit_codes.EXIT_API_ERROR
    with pytest.raises(SystemExit) as usage:
        main(["tasks", "pause"])  # no ID
    assert usage.value.code == exit_codes.EXIT_USAGE


@pytest.fixture
def keyed_api(stack: ProcessStack, services: Any, tmp_path: Path) -> Iterator[ProcessStack]:
    """Another API process on the stack's servers and task queue, with keys required."""
    with api_beside(stack, services, tmp_path, api_keys=f"acme:{KEY}", sse_retry_ms="200") as api:
        yield api


def test_watch_resumes_after_the_api_restarts_with_a_key(
    keyed_api: ProcessStack, tmp_path: Path
) -> None:
    env = {"TASKPLANE_API_URL": keyed_api.base_url, "TASKPLANE_API_KEY": KEY}
    denied = taskplane("list", env={"TASKPLANE_API_URL": keyed_api.base_url})
    assert denied.returncode == exit_codes.EXIT_API_ERROR
    assert "401" in denied.stderr

    stderr_file = tmp_path / "watch.stderr"
    # `create --watch`: the task starts only once the CLI is up and about to watch it.
    task_input = json.dumps({"steps": 3, "step_seconds": 0.8, "progress_ticks": 4})
    command = ["tasks", "create", "demo.pipeline", "--input", task_input, "--watch"]
    watcher = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *command],
        stdout=subprocess.PIPE,
        stderr=stderr_file.open("w"),
        text=True,
        env={**os.environ, **env},
    )
    assert watcher.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while len(lines) < 4:  # the "created" line and the first events, as they come
        assert time.monotonic() < deadline, lines
        lines.append(watcher.stdout.readline())
    keyed_api.stop("api")  # the task goes on; the watcher retries against a closed port
    keyed_api.start("api")
    keyed_api.wait_ready()

    lines += watcher.stdout.read().splitlines(keepends=True)  # to its end (EOF)
    assert watcher.wait(timeout=10) == exit_codes.EXIT_OK, stderr_file.read_text()
    errors = stderr_file.read_text()
    created_line, *event_lines, outcome = lines
    task_id = created_line.split()[1]
    assert outcome.strip() == f"task {task_id} completed"
    stored = history(keyed_api.base_url, task_id, KEY)
    shown = [line.split()[:2] for line in event_lines]
    assert shown == [[f"#{e['sequence']}", e["type"]] for e in stored]  # none twice or lost
    assert "resuming after" in errors  # it did lose the connection and come back
