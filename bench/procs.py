"""Child processes of the bench (the real API and worker) and what /proc says about them."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from bench.stack import Endpoints
from devstack.ports import free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# `python -m bench.worker` must resolve from the checkout, wherever the bench was started.
REPO_ROOT = Path(__file__).resolve().parent.parent


def raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; children inherit it. Returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    """VmRSS of one process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, cpu seconds) of one process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process and all its live descendants (Postgres backends too)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(entry)) is not None:
            parents[int(entry)] = stat[0]
            cpu[int(entry)] = stat[1]
    total = 0.0
    for pid, seconds in cpu.items():
        current = pid
        while current > 1:
            if current == root_pid:
                total += seconds
                break
            current = parents.get(current, 0)
    return total


class ChildProcess:
    """`python -m <module>` against the bench's servers, logging to a file."""

    def __init__(self, module: str, endpoints: Endpoints, log_dir: Path, **settings: str) -> None:
        self.module = module
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.task_queue = settings.pop("task_queue", f"bench-{uuid.uuid4().hex[:8]}")
        self.log_path = log_dir / f"{module.replace('.', '-')}-{self.port}.log"
        self.env = {
            **os.environ,
            "TASKPLANE_DATABASE_URL": endpoints.database_url,
            "TASKPLANE_REDIS_URL": endpoints.redis_url,
            "TASKPLANE_TEMPORAL_ADDRESS": endpoints.temporal_address,
            "TASKPLANE_TASK_QUEUE": self.task_queue,
            "TASKPLANE_API_PORT": str(self.port),
            # A worker's metrics endpoints: free ports, never the defaults a running
            # `taskplane up` may hold.
            "TASKPLANE_WORKER_METRICS_PORT": str(free_port()),
            "TASKPLANE_WORKER_METRICS_TEMPORAL_PORT": str(free_port()),
            **{f"TASKPLANE_{k.upper()}": v for k, v in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.module} is not running")
        return self.process.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        """For the API: until /readyz says 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.module} not ready:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
