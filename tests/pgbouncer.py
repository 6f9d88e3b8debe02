"""PgBouncer from Debian (`pgbouncer` package) in front of the test Postgres.

Transaction pooling (`pool_mode = transaction`) with a small server pool, on a free
TCP port, its configuration in a folder of its own; clients authenticate to PgBouncer
by `trust` (the user must be listed in its auth file), and PgBouncer logs in to
Postgres as the user the test database URL names. As root it runs as the embedded
Postgres's system user (PgBouncer refuses to run as root), so the folder sits outside
pytest's private temp root, like the Postgres data (tests/postgres_home.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from devstack.ports import free_port
from devstack.process import ManagedProcess

PGBOUNCER = "/usr/sbin/pgbouncer"
SYSTEM_USER = "embedded_postgres"  # devstack/postgres.py runs Postgres as it when root


def pgbouncer_binary() -> str:
    """The binary, or a skip (a failure when TASKPLANE_TEST_REQUIRE_PGBOUNCER=1, as in CI)."""
    found = shutil.which("pgbouncer") or (PGBOUNCER if os.access(PGBOUNCER, os.X_OK) else None)
    if found:
        return found
    reason = "pgbouncer is not installed (apt-get install pgbouncer)"
    if os.environ.get("TASKPLANE_TEST_REQUIRE_PGBOUNCER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _config(database_url: str, port: int, folder: Path, pool_size: int) -> str:
    target = conninfo_to_dict(database_url)
    user = target.get("user") or "postgres"
    server = " ".join(
        f"{key}={target[key]}"
        for key in ("host", "port", "dbname", "user", "password")
        if target.get(key)
    )
    return "\n".join(
        [
            "[databases]",
            f"{target.get('dbname', 'taskplane')} = {server}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {folder / 'users.txt'}",
            "pool_mode = transaction",
            f"default_pool_size = {pool_size}",
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            "max_client_conn = 500",
            f"admin_users = {user}",
            "",
        ]
    )


@contextmanager
def running_pgbouncer(database_url: str, log_path: Path, *, pool_size: int = 4) -> Iterator[str]:
    """Start PgBouncer in transaction mode in front of `database_url`; yield its URL."""
    binary = pgbouncer_binary()
    target = conninfo_to_dict(database_url)
    user = str(target.get("user") or "postgres")
    dbname = str(target.get("dbname") or "taskplane")
    folder = Path(tempfile.mkdtemp(prefix="taskplane-test-pgbouncer-"))
    folder.chmod(0o755)
    port = free_port()
    try:
        (folder / "users.txt").write_text(f'"{user}" ""\n')
        config = folder / "pgbouncer.ini"
        config.write_text(_config(database_url, port, folder, pool_size))
        for path in (folder / "users.txt", config):
            path.chmod(0o644)
        process = ManagedProcess(
            "pgbouncer",
            [binary, config],
            log_path=log_path,
            user=SYSTEM_USER if os.geteuid() == 0 else None,
            stop_signal=signal.SIGTERM,  # immediate shutdown (SIGINT waits for clients)
        )
        process.start()
        try:
            process.wait_ready(lambda: _listening(port), timeout=15)
            yield f"postgresql://{user}@127.0.0.1:{port}/{dbname}"
        finally:
            process.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
