"""The worker and the API as real processes against the session's real servers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from devstack.ports import free_port
from store import open_pool


class ProcessStack:
    """`python -m worker` and `python -m api`, as `taskplane up` runs them."""

    def __init__(self, services: Any, log_dir: Path, **settings: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Each stack's worker serves its metrics (ours, and the Temporal SDK's) on ports
        # of its own, so stacks side by side never collide on the defaults.
        self.worker_metrics_port = free_port()
        self.worker_temporal_metrics_port = free_port()
        self.env = {
            **os.environ,
            "TASKPLANE_DATABASE_URL": services.database_url,
            "TASKPLANE_REDIS_URL": services.redis_url,
            "TASKPLANE_TEMPORAL_ADDRESS": services.temporal_address,
            "TASKPLANE_TASK_QUEUE": f"e2e-{uuid.uuid4().hex[:8]}",
            "TASKPLANE_API_PORT": str(self.port),
            "TASKPLANE_OUTBOX_GRACE_SECONDS": "0.5",
            "TASKPLANE_WORKER_METRICS_PORT": str(self.worker_metrics_port),
            "TASKPLANE_WORKER_METRICS_TEMPORAL_PORT": str(self.worker_temporal_metrics_port),
            **{f"TASKPLANE_{k.upper()}": v for k, v in settings.items()},
        }
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", name], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def stop(self, name: str, *, kill: bool = False) -> None:
        process = self.processes.pop(name)
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited: {self.log_tail(name)}")
            try:
                response = httpx.get(f"{self.base_url}/readyz", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.2)
        raise RuntimeError(f"API not ready: {last}\n{self.log_tail('api')}")

    def log_tail(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def post_mortem(self) -> list[tuple[str, str]]:
        """Each of its processes' logs (the tail), saying whether it still runs."""
        sections = []
        for path in sorted(self.log_dir.glob("*.log")):
            process = self.processes.get(path.stem)
            code = None if process is None else process.poll()
            state = "stopped" if process is None else "running" if code is None else f"exit {code}"
            sections.append((f"{path.stem} ({state}), its log's tail", self.log_tail(path.stem)))
        return sections

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report carries its stacks' state and log tails: CI's temp folders,
    where the logs are, are gone by the time anyone reads the failure."""
    report: pytest.TestReport = yield
    if report.when == "call" and report.failed:
        for fixture, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, ProcessStack):
                for title, text in value.post_mortem():
                    report.sections.append((f"{fixture}: {title}", text))
    return report


@contextmanager
def running_stack(services: Any, log_dir: Path, **settings: str) -> Iterator[ProcessStack]:
    """A worker and an API, ready, stopped on exit."""
    processes = ProcessStack(services, log_dir, **settings)
    processes.start("worker")
    processes.start("api")
    try:
        processes.wait_ready()
        yield processes
    finally:
        processes.stop_all()


@contextmanager
def api_beside(
    stack: ProcessStack, services: Any, log_dir: Path, **settings: str
) -> Iterator[ProcessStack]:
    """Another API process on `stack`'s servers and task queue (its worker serves both)."""
    api = ProcessStack(services, log_dir, task_queue=stack.env["TASKPLANE_TASK_QUEUE"], **settings)
    api.start("api")
    try:
        api.wait_ready()
        yield api
    finally:
        api.stop_all()


@pytest.fixture(scope="session")
def stack(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    with running_stack(services, tmp_path_factory.mktemp("e2e-logs")) as processes:
        yield processes


@pytest.fixture(scope="session")
def replaying_stack(
    services: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessStack]:
    """A worker that caches no workflow: every workflow task replays the whole history,
    so any non-determinism in the workflow code fails the tests that use it."""
    log_dir = tmp_path_factory.mktemp("e2e-replaying")
    with running_stack(services, log_dir, worker_max_cached_workflows="0") as processes:
        yield processes


@pytest.fixture
async def pool(stack: ProcessStack) -> AsyncIterator[AsyncConnectionPool]:
    """The stack's store, read directly: the truth the invariants are checked against."""
    the_pool = await open_pool(stack.env["TASKPLANE_DATABASE_URL"], min_size=1, max_size=2)
    yield the_pool
    await the_pool.close()


@pytest.fixture
async def client(stack: ProcessStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        yield http


@pytest.fixture(params=["cached", "replaying"])
async def both_workers_client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """The API of the normal stack, then of the one whose worker replays every task."""
    chosen: ProcessStack = request.getfixturevalue(
        "stack" if request.param == "cached" else "replaying_stack"
    )
    async with httpx.AsyncClient(base_url=chosen.base_url, timeout=30) as http:
        yield http
