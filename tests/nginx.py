"""nginx (Debian's, /usr/sbin/nginx) in front of several real API processes, for tests.

`many_processes` runs what `taskplane up --apis N --workers M` runs, the way the e2e
suite starts API and worker processes (`tests.e2e.conftest.ProcessStack`): N APIs and M
workers on one task queue against the session's servers, and the proxy from
`devstack.nginx` (the same rendered configuration) in front of the APIs. Without nginx
the tests skip, or fail when `TASKPLANE_TEST_REQUIRE_NGINX=1` (as in CI).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.nginx import NginxNotFoundError, NginxProxy, nginx_binary
from tests.e2e.conftest import ProcessStack
from tests.metrics_text import required


def nginx_or_skip() -> str:
    """The binary, or a skip (a failure when TASKPLANE_TEST_REQUIRE_NGINX=1, as in CI)."""
    try:
        return nginx_binary()
    except NginxNotFoundError as exc:
        if os.environ.get("TASKPLANE_TEST_REQUIRE_NGINX") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@dataclass
class ManyProcesses:
    """N APIs (one `ProcessStack` each; the first M also run a worker) behind `proxy`."""

    stacks: list[ProcessStack]
    proxy: NginxProxy

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def apis(self) -> list[ProcessStack]:
        return self.stacks

    @property
    def workers(self) -> list[ProcessStack]:
        return [stack for stack in self.stacks if "worker" in stack.processes]

    def streams_open(self) -> list[int]:
        """`taskplane_sse_streams_open` of each API, read from the API itself (not the proxy)."""
        return [
            int(
                required(
                    httpx.get(f"{api.base_url}/metrics", timeout=10).text,
                    "taskplane_sse_streams_open",
                )
            )
            for api in self.apis
        ]

    def kill_api(self, index: int) -> None:
        """SIGKILL API `index` (its port stays in the proxy's upstreams)."""
        process = self.apis[index].processes["api"]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=20)
        self.apis[index].processes.pop("api")

    def restart_api(self, index: int) -> None:
        api = self.apis[index]
        api.start("api")
        api.wait_ready()


@contextmanager
def many_processes(
    services: Any, log_dir: Path, *, apis: int = 3, workers: int = 2, **settings: str
) -> Iterator[ManyProcesses]:
    """`apis` APIs and `workers` workers on one task queue, ready, behind nginx; stopped on
    exit (nginx first)."""
    nginx_or_skip()
    if not 1 <= workers <= apis:
        raise ValueError("one ProcessStack per API; the first `workers` of them run a worker")
    queue = f"e2e-many-{uuid.uuid4().hex[:8]}"
    # One secret for all: a stream token minted by one API is accepted by the others.
    shared = {"task_queue": queue, "stream_token_secret": "n" * 32, **settings}
    with ExitStack() as exit_stack:
        stacks: list[ProcessStack] = []
        for number in range(apis):
            folder = log_dir / f"api-{number + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            stack = ProcessStack(services, folder, **shared)
            exit_stack.callback(stack.stop_all)
            if number < workers:
                stack.start("worker")
            stack.start("api")
            stacks.append(stack)
        for stack in stacks:
            stack.wait_ready()
        proxy = NginxProxy(
            log_dir / "nginx",
            [("127.0.0.1", stack.port) for stack in stacks],
            heartbeat_seconds=float(settings.get("sse_heartbeat_seconds", 15.0)),
            log_path=log_dir / "nginx.log",
        )
        exit_stack.callback(proxy.stop)  # registered last: stopped first
        proxy.start()
        yield ManyProcesses(stacks, proxy)
