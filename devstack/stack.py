"""The three servers Taskplane needs, embedded unless configured.

For each of Postgres, Redis and Temporal: when its `TASKPLANE_*` URL is set,
that server is used as it is (nothing is started, nothing is checked here;
the first client reports an unreachable server); otherwise the embedded server
is started with its state under one folder:

    <state_dir>/postgres   data directory and socket folder
    <state_dir>/redis      append-only file, remembered port
    <state_dir>/temporal   SQLite database
    <state_dir>/logs       one log file per server (and per process under `up`)

Leaving the context stops what it started, in reverse order, so Temporal
(whose clients may still be draining) goes first and Postgres last.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol

from devstack.lock import DataDirInUseError
from devstack.ports import PortInUseError
from devstack.postgres import EmbeddedPostgres
from devstack.process import ManagedProcess, ProcessFailedError
from devstack.redis import EmbeddedRedis
from devstack.temporal import TemporalDevServer
from settings import Settings

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """An embedded server could not be started; the message says which and why."""


class _Server(Protocol):
    @property
    def process(self) -> ManagedProcess | None: ...

    def stop(self) -> None: ...


class LocalStack:
    """Context manager: the resolved URLs of Postgres, Redis and Temporal."""

    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.settings = settings
        self.state_dir = state_dir.absolute()
        self.logs_dir = self.state_dir / "logs"
        self._database_url = settings.database_url
        self._redis_url = settings.redis_url
        self._temporal_address = settings.temporal_address
        self.temporal_ui_url: str | None = None
        self._servers: dict[str, _Server] = {}
        self._exit = contextlib.ExitStack()

    # -- resolved endpoints ----------------------------------------------------------

    @property
    def database_url(self) -> str:
        return _resolved(self._database_url, "database_url")

    @property
    def redis_url(self) -> str:
        return _resolved(self._redis_url, "redis_url")

    @property
    def temporal_address(self) -> str:
        return _resolved(self._temporal_address, "temporal_address")

    @property
    def started(self) -> list[str]:
        """Names of the embedded servers this stack started, in start order."""
        return list(self._servers)

    def processes(self) -> list[ManagedProcess]:
        """The started servers' processes, for a supervisor to watch."""
        return [proc for server in self._servers.values() if (proc := server.process)]

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        try:
            self._start_all()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every server this stack started, last started first."""
        self._exit.close()
        self._servers.clear()

    def _start_all(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        temporal: TemporalDevServer | None = None
        if not self._temporal_address:
            temporal = TemporalDevServer(
                self.state_dir / "temporal",
                port=self.settings.temporal_port,
                ui_port=self.settings.temporal_ui_port or None,  # 0: no Web UI
                namespace=self.settings.temporal_namespace,
                log_path=self.logs_dir / "temporal.log",
            )
            try:  # before starting anything: its ports are fixed, the others' are not
                temporal.check_ports()
            except PortInUseError as exc:
                raise StackError(str(exc)) from exc
        if self._database_url:
            log.info("postgres: using TASKPLANE_DATABASE_URL, not starting one")
        else:
            postgres = EmbeddedPostgres(
                self.state_dir / "postgres", log_path=self.logs_dir / "postgres.log"
            )
            self._database_url = self._start("postgres", postgres, postgres.start)
        if self._redis_url:
            log.info("redis: using TASKPLANE_REDIS_URL, not starting one")
        else:
            redis = EmbeddedRedis(self.state_dir / "redis", log_path=self.logs_dir / "redis.log")
            self._redis_url = self._start("redis", redis, redis.start)
        if temporal is None:
            log.info("temporal: using TASKPLANE_TEMPORAL_ADDRESS, not starting one")
        else:
            self._temporal_address = self._start("temporal", temporal, temporal.start)
            self.temporal_ui_url = temporal.ui_url

    def _start(self, name: str, server: _Server, start: Callable[[], str]) -> str:
        # Registered before starting: a half-started server is stopped too.
        self._exit.callback(server.stop)
        try:
            endpoint = start()
        except (ProcessFailedError, PortInUseError, DataDirInUseError) as exc:
            raise StackError(f"could not start {name}: {exc}") from exc
        self._servers[name] = server
        return endpoint


def _resolved(value: str | None, name: str) -> str:
    if not value:
        raise RuntimeError(f"LocalStack.{name} is only known inside `with LocalStack(...)`")
    return value
