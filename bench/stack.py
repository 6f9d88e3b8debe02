"""The servers one bench run measures against: its own, on free ports, in a temp dir.

Started the way `taskplane up` and the test suite start them (`devstack`), so
the bench measures the same binaries. One bench-only setting differs:
Postgres runs with `track_commit_timestamp = on`, so the latency part can take
an event's commit time from the database itself
(`pg_xact_commit_timestamp(xmin)`) instead of trusting the recording
activity's clock reading taken just before the commit.

The Temporal dev server keeps its state in memory by default here
(`temporal_db="memory"`), not in the SQLite file `make up` uses: with the
file, every workflow step waits on SQLite's writes and bare Temporal runs at
about half its in-memory rate, which would hide the worker's CPU cost (what
the throughput part is after) behind the dev server's disk. In production
Temporal's persistence is another machine's business. `--temporal-db file`
measures the `make up` configuration.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from devstack import EmbeddedPostgres, EmbeddedRedis, TemporalDevServer
from devstack.aio import run_sync
from devstack.ports import free_port
from devstack.temporal import temporal_binary
from store.migrate import migrate
from store.partitions import PartitionPolicy, drop_empty, make_ahead

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    redis_url: str
    temporal_address: str


class BenchServers(contextlib.ExitStack):
    """Postgres, Redis and a Temporal dev server of the bench's own; stopped on exit."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        keep: bool = False,
        temporal_db: str = "memory",
        partitions: PartitionPolicy | None = None,
    ) -> None:
        super().__init__()
        self.temporal_db = temporal_db
        self.partitions = partitions  # the events partitions made at migrate (None: defaults)
        self.root = root or Path(tempfile.mkdtemp(prefix="taskplane-bench-"))
        self.logs = self.root / "logs"
        self._keep = keep
        self._servers: dict[str, EmbeddedPostgres | EmbeddedRedis | TemporalDevServer] = {}

    def start(self) -> Endpoints:
        self.logs.mkdir(parents=True, exist_ok=True)
        if not self._keep:
            self.callback(shutil.rmtree, self.root, ignore_errors=True)
        postgres = EmbeddedPostgres(self.root / "postgres", log_path=self.logs / "postgres.log")
        self.callback(postgres.stop)
        database_url = postgres.start()
        enable_commit_timestamps(database_url)
        postgres.stop()  # the setting takes effect on restart only
        database_url = postgres.start()
        self._servers["postgres"] = postgres
        redis = EmbeddedRedis(self.root / "redis", log_path=self.logs / "redis.log")
        self.callback(redis.stop)
        redis_url = redis.start()
        self._servers["redis"] = redis
        server_class = TemporalDevServer if self.temporal_db == "file" else InMemoryTemporal
        temporal = server_class(
            self.root / "temporal",
            port=free_port(),
            ui_port=None,
            log_path=self.logs / "temporal.log",
        )
        self.callback(temporal.stop)
        temporal_address = temporal.start()
        self._servers["temporal"] = temporal
        run_sync(lambda: migrate(database_url, self.partitions))
        if self.partitions is not None:
            policy = self.partitions
            run_sync(lambda: _narrow_partitions(database_url, policy))
        return Endpoints(database_url, redis_url, temporal_address)

    def pids(self) -> dict[str, int]:
        """name → pid of each server started (their process trees are what CPU is read from)."""
        found: dict[str, int] = {}
        for name, server in self._servers.items():
            process = server.process
            if process is not None and process.pid is not None:
                found[name] = process.pid
        return found


async def _narrow_partitions(database_url: str, policy: PartitionPolicy) -> None:
    """Migration 0009 makes a week of daily partitions; a bench that asks for narrower
    ones (so retention can drop some within its run) drops those, empty on its new
    database, and makes its own."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        now = datetime.now(UTC)
        await drop_empty(conn, policy, overdue_before=now, now=now + timedelta(days=366))
        await make_ahead(conn, policy)


class InMemoryTemporal(TemporalDevServer):
    """The devstack dev server without `--db-filename`: SQLite in memory."""

    def command(self) -> list[str]:
        argv = super().command()
        at = argv.index("--db-filename")
        return argv[:at] + argv[at + 2 :]


def enable_commit_timestamps(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
        # The latency part reports the WAL flush time of its rounds (bench/wal_flush.py):
        # Postgres stamps a commit before flushing it, so that flush is part of the
        # commit -> client latency it measures. A clock read per WAL write and sync.
        conn.execute("ALTER SYSTEM SET track_wal_io_timing = on")


def server_versions(endpoints: Endpoints) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    with psycopg.connect(endpoints.database_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        versions["postgres"] = str(row[0]) if row else None
        row = conn.execute("SHOW track_commit_timestamp").fetchone()
        versions["postgres_track_commit_timestamp"] = str(row[0]) if row else None
    try:
        import redis

        client = redis.Redis.from_url(endpoints.redis_url)
        info = client.info("server")
        versions["redis"] = str(info.get("redis_version"))
        client.close()
    except Exception:
        versions["redis"] = None
    from bench.machine import temporal_cli_version

    try:
        versions["temporal_cli"] = temporal_cli_version(temporal_binary())
    except RuntimeError:
        versions["temporal_cli"] = None
    return versions
