"""The application processes `taskplane up` runs on top of the servers.

M workers (`--workers`), N APIs (`--apis`) and, when N > 1, nginx in front of the APIs
on the configured API address (devstack/nginx.py): the APIs then listen on free
loopback ports of their own, round robin without sticky sessions, and share one stream
token secret (a stream token minted by one must be accepted by the others). Started in
the order workers, APIs, proxy; stopped in the reverse one.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable
from functools import partial

from cli.stack_info import child_env, connect_host, worker_metrics
from devstack.nginx import NginxProxy
from devstack.ports import LOOPBACK, free_port
from devstack.process import ManagedProcess
from devstack.stack import LocalStack
from settings import Settings

log = logging.getLogger("taskplane")

Probe = Callable[[str], bool]  # URL of /healthz → healthy?


class AppProcesses:
    """Workers, APIs and the proxy of one `taskplane up`."""

    def __init__(self, stack: LocalStack, settings: Settings, *, apis: int, workers: int) -> None:
        env = child_env(stack)
        logs = stack.logs_dir
        self.rows: list[tuple[str, str]] = []  # banner rows: metrics and direct API addresses
        self.workers: list[ManagedProcess] = []
        for number in range(1, workers + 1):
            # Each worker its own metrics ports: the configured ones for the first (when
            # free), free ones for the others.
            metrics_env, rows = worker_metrics(settings, number)
            self.rows += rows
            name = "worker" if number == 1 else f"worker-{number}"
            self.workers.append(
                ManagedProcess(
                    name,
                    [sys.executable, "-m", "worker"],
                    log_path=logs / f"{name}.log",
                    env={**env, **metrics_env},
                )
            )
        public = f"http://{connect_host(settings.api_host)}:{settings.api_port}"
        self.url = public
        self.proxy: NginxProxy | None = None
        self.apis: list[tuple[ManagedProcess, str]] = []
        if apis == 1:  # as before: the API itself on the configured address
            self.apis.append(
                (
                    ManagedProcess(
                        "api", [sys.executable, "-m", "api"], log_path=logs / "api.log", env=env
                    ),
                    public,
                )
            )
            return
        api_env = {**env, "TASKPLANE_API_HOST": LOOPBACK}
        if settings.stream_token_secret is None:
            api_env["TASKPLANE_STREAM_TOKEN_SECRET"] = secrets.token_urlsafe(32)
        for number in range(1, apis + 1):
            port = free_port()
            name = f"api-{number}"
            process = ManagedProcess(
                name,
                [sys.executable, "-m", "api"],
                log_path=logs / f"{name}.log",
                env={**api_env, "TASKPLANE_API_PORT": str(port)},
            )
            direct = f"http://{LOOPBACK}:{port}"
            self.apis.append((process, direct))
            self.rows.append((f"API {number} (direct)", direct))
        self.proxy = NginxProxy(
            stack.state_dir / "nginx",
            [(LOOPBACK, int(url.rsplit(":", 1)[1])) for _, url in self.apis],
            host=settings.api_host,
            port=settings.api_port,
            heartbeat_seconds=settings.sse_heartbeat_seconds,
            log_path=logs / "nginx.log",
        )
        self.rows.append(("Proxy", f"nginx, config {self.proxy.config_path}"))

    def start(self, healthy: Probe, timeout: float) -> None:
        """Start everything; return once every API, and the proxy, answer `/healthz`."""
        for worker in self.workers:
            worker.start()
        for api, _ in self.apis:
            api.start()
        for api, url in self.apis:
            took = api.wait_ready(partial(healthy, f"{url}/healthz"), timeout=timeout)
            log.info("%s healthy in %.2fs", api.name, took)
        if self.proxy is not None:
            self.proxy.start()
            proxy = self.proxy.process
            assert proxy is not None
            proxy.wait_ready(partial(healthy, f"{self.url}/healthz"), timeout=timeout)

    def processes(self) -> list[ManagedProcess]:
        """Every started process, for the supervisor to watch."""
        found = [*self.workers, *(api for api, _ in self.apis)]
        if self.proxy is not None and self.proxy.process is not None:
            found.append(self.proxy.process)
        return found

    def stop(self) -> None:
        """Proxy first (no new requests), then the APIs, then the workers."""
        if self.proxy is not None:
            self.proxy.stop()
        for api, _ in reversed(self.apis):
            api.stop()
        for worker in reversed(self.workers):
            worker.stop()
