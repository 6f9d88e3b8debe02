"""Fuzzing the running stack (API keys set): schemathesis over the OpenAPI document,
and a Hypothesis state machine over the task lifecycle.

Schemathesis runs every check it has (no 5xx, status codes, content types,
headers and bodies as documented, invalid data refused, valid data accepted,
auth enforced, created tasks readable, …) on every operation but the SSE
stream, which would hold a request open until its task ends (its own tests
cover it); the few documented exceptions are in `schemathesis.toml`. Both fuzzers
run the same examples every time, so CI is reproducible; `FUZZ_SEED=random` (or, for
schemathesis, a number) explores further.

The state machine creates a task, then pauses, resumes and cancels it in
random order, and checks the answers (a resume with no pause pending, or a
second pause, is 409, never a 5xx) and, once the task ended, that its status
and its event sequence agree with the commands that were accepted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.e2e.conftest import ProcessStack, running_stack

pytestmark = pytest.mark.e2e

KEY_A = "fuzz-key-of-tenant-a-0123456789"
KEY_B = "fuzz-key-of-tenant-b-0123456789"
HERE = Path(__file__).parent
ROOT = HERE.parent.parent
TERMINAL = {"task.completed.v1", "task.failed.v1", "task.cancelled.v1"}


@pytest.fixture(scope="module")
def keyed_stack(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    with running_stack(
        services,
        tmp_path_factory.mktemp("fuzz-logs"),
        api_keys=f"tenant_a:{KEY_A},tenant_b:{KEY_B}",
        webhook_allow_private_networks="true",  # fuzzed webhook URLs are never resolved
    ) as processes:
        yield processes


def test_schemathesis_all_checks(keyed_stack: ProcessStack, tmp_path: Path) -> None:
    seed = os.environ.get("FUZZ_SEED", "20261127")
    # No `--checks`: every check is on by default, and only then do the per-operation
    # exceptions in schemathesis.toml apply (checks named on the command line win).
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{keyed_stack.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {KEY_A}",
        "--exclude-path",
        "/tasks/{task_id}/events",
        "--max-examples",
        "8",
        "--workers",
        "1",
        "--request-timeout",
        "15",
        *(["--seed", seed] if seed != "random" else []),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks", "PYTHONPATH": str(ROOT)}
    began = time.monotonic()
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150
    )
    report = done.stdout[-12_000:] + done.stderr[-3_000:]
    assert done.returncode == 0, (
        f"schemathesis found problems:\n{report}\n{keyed_stack.log_tail('api')}"
    )
    assert "Tested:" in done.stdout, report
    assert time.monotonic() - began < 120, "the fuzz run outgrew its time budget"


# --- the task lifecycle state machine ----------------------------------------------------


class TaskLifecycle(RuleBasedStateMachine):
    """One task per example; commands in any order; the API's answers and the task's
    events must tell one consistent story."""

    base_url: ClassVar[str] = ""
    STEPS: ClassVar[int] = 3
    # Every event type seen over all examples: proof the machine did more than get 409s.
    seen: ClassVar[set[str]] = set()

    def __init__(self) -> None:
        super().__init__()
        self.http = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {KEY_B}"}, timeout=20
        )
        created = self.http.post(
            "/tasks",
            json={"type": "demo.pipeline", "input": {"steps": self.STEPS, "step_seconds": 0.3}},
        )
        assert created.status_code == 202, created.text
        self.task_id: str = created.json()["task_id"]
        self.accepted: list[str] = []
        self.pause_pending = False  # an accepted pause not yet undone by an accepted resume
        self.cancel_sent = False

    def _command(self, name: str) -> int:
        response = self.http.post(f"/tasks/{self.task_id}/{name}")
        assert response.status_code in (202, 409), (name, response.status_code, response.text)
        if response.status_code == 409:
            assert response.headers["content-type"] == "application/problem+json"
        else:
            self.accepted.append(name)
        return response.status_code

    @rule()
    def pause(self) -> None:
        status = self._command("pause")
        if self.pause_pending:
            assert status == 409, "a second pause was accepted"
        if status == 202:
            self.pause_pending = True

    @rule()
    def resume(self) -> None:
        status = self._command("resume")
        if not self.pause_pending:
            assert status == 409, "a resume without a pending pause was accepted"
        if status == 202:
            self.pause_pending = False

    @rule()
    def cancel(self) -> None:
        if self._command("cancel") == 202:
            self.cancel_sent = True

    @rule()
    def settle(self) -> None:
        """Wait until the last accepted command shows in the task's status."""
        wanted = (
            {"cancelled", "completed"}  # completed: the cancel came as the task finished
            if self.cancel_sent
            else {"paused", "completed"}
            if self.pause_pending
            else {"running", "completed"}
        )
        status = self._status_within(wanted, seconds=15)
        assert status in wanted, (status, wanted, self.accepted)

    @invariant()
    def readable(self) -> None:
        assert self.http.get(f"/tasks/{self.task_id}").status_code == 200

    def _status_within(self, wanted: set[str], seconds: float) -> str:
        deadline = time.monotonic() + seconds
        status = ""
        while time.monotonic() < deadline:
            status = str(self.http.get(f"/tasks/{self.task_id}").json()["status"])
            if status in wanted:
                return status
            time.sleep(0.05)
        return status

    def teardown(self) -> None:
        try:
            if not self.cancel_sent and self.pause_pending:
                # Let the pause take effect first (it waits for a step boundary).
                self._status_within({"paused", "completed"}, seconds=15)
                self._command("resume")
            final = self._status_within({"completed", "failed", "cancelled"}, seconds=30)
            self._check_story(final)
        finally:
            self.http.close()

    def _check_story(self, final: str) -> None:
        events = self.http.get(f"/tasks/{self.task_id}/history?limit=1000").json()["events"]
        types = [event["type"] for event in events]
        story = (self.accepted, types)
        TaskLifecycle.seen.update(types)
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1)), story
        assert types[0] == "task.created.v1", story
        assert [t for t in types if t in TERMINAL] == [types[-1]], story
        assert types[-1] == f"task.{final}.v1", story
        # Pauses and resumes alternate, each caused by an accepted command.
        control = [t for t in types if t in ("task.paused.v1", "task.resumed.v1")]
        assert control == ["task.paused.v1", "task.resumed.v1"] * (len(control) // 2) + (
            ["task.paused.v1"] if len(control) % 2 else []
        ), story
        assert control.count("task.paused.v1") <= self.accepted.count("pause"), story
        assert control.count("task.resumed.v1") <= self.accepted.count("resume"), story
        steps_done = types.count("task.step.completed.v1")
        if self.cancel_sent:
            # A cancel takes effect unless the task was already finishing (every step done).
            assert final == "cancelled" or (final == "completed" and steps_done == self.STEPS), (
                story
            )
        else:
            assert final == "completed", story
            assert steps_done == self.STEPS, story
        if final == "completed":
            assert len(control) % 2 == 0, story  # never completed while paused


def test_task_lifecycle_state_machine(keyed_stack: ProcessStack) -> None:
    TaskLifecycle.base_url = keyed_stack.base_url
    TaskLifecycle.seen = set()
    run_state_machine_as_test(
        TaskLifecycle,
        settings=settings(
            max_examples=12,
            stateful_step_count=6,
            deadline=None,
            database=None,
            # The same command sequences every run (like the schemathesis seed), unless
            # FUZZ_SEED=random asks for new ones.
            derandomize=os.environ.get("FUZZ_SEED") != "random",
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    for event_type in ("task.paused.v1", "task.resumed.v1", "task.cancelled.v1"):
        assert event_type in TaskLifecycle.seen, f"no example made {event_type}"


def test_tenants_fuzzed_tasks_stay_private(keyed_stack: ProcessStack) -> None:
    """After both fuzzers ran, tenant A (schemathesis) and tenant B (the state machine)
    still see only their own tasks."""
    lists = {}
    for key in (KEY_A, KEY_B):
        response = httpx.get(
            f"{keyed_stack.base_url}/tasks?limit=500",
            headers={"Authorization": f"Bearer {key}"},
            timeout=20,
        )
        assert response.status_code == 200
        lists[key] = {task["task_id"] for task in response.json()["tasks"]}
    assert lists[KEY_B], "the state machine made tasks"
    assert not lists[KEY_A] & lists[KEY_B]
    stranger = str(uuid.uuid4())
    assert (
        httpx.get(
            f"{keyed_stack.base_url}/tasks/{stranger}", headers={"Authorization": f"Bearer {KEY_A}"}
        ).status_code
        == 404
    )
