"""`taskplane`: run the whole local stack, or one of its processes.

    taskplane up           servers + migrations + worker + API, in the foreground
                           (--workers M, --apis N: N APIs behind nginx)
    taskplane services     only the servers (for tests, or to run worker/API yourself)
    taskplane migrate      apply pending migrations to TASKPLANE_DATABASE_URL
    taskplane clean-state  delete the local stack's data, unless it is running
    taskplane worker       = python -m worker
    taskplane api          = python -m api
    taskplane tasks …      create, list, show, pause, resume, cancel, watch tasks (cli/tasks.py)
    taskplane prune …      delete closed tasks past a retention, or count them (cli/prune.py)
    taskplane schedules …  tasks on a cron or an interval (cli/schedules.py)

`up` is a small supervisor rather than a process manager: it owns its children
(see devstack.process), stops them in order (proxy, APIs, workers, Temporal, Redis,
Postgres) on Ctrl-C or SIGTERM, and treats any child dying on its own as fatal,
so a broken stack is never half up.
"""

from __future__ import annotations

import argparse
import logging
import runpy
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType

import httpx
import psycopg

from cli import prune, schedules, tasks
from cli.apps import AppProcesses
from cli.stack_info import banner, write_env_file
from devstack.aio import run_sync
from devstack.lock import DataDirInUseError, held_elsewhere
from devstack.nginx import NginxNotFoundError, nginx_binary
from devstack.ports import PortInUseError, ensure_free
from devstack.postgres import socket_dir_for
from devstack.process import ManagedProcess, ProcessFailedError
from devstack.stack import LocalStack, StackError
from settings import ConfigurationError, Settings, get_settings

log = logging.getLogger("taskplane")

HEALTH_TIMEOUT_SECONDS = 60.0
SUPERVISE_INTERVAL_SECONDS = 0.5
NOISY_LOGGERS = ("temporalio", "redis", "httpx", "httpcore", "asyncio")


# -- commands ----------------------------------------------------------------------------


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Servers, migrations, workers and APIs (behind nginx when several); blocks until
    Ctrl-C or a child dies."""
    ensure_free(
        settings.api_port, "the API", "set TASKPLANE_API_PORT to another port", settings.api_host
    )
    if args.apis > 1:
        nginx_binary()  # before any server starts: a missing proxy is a clear error
    _stop_on_signals()
    with LocalStack(settings, settings.state_dir) as stack:
        _log_migrations(_migrate(stack.database_url, settings))
        apps = AppProcesses(stack, settings, apis=args.apis, workers=args.workers)
        env_file = write_env_file(stack)
        try:
            apps.start(_healthy, HEALTH_TIMEOUT_SECONDS)
            banner(stack, settings, apps.url, env_file, apps.rows)
            return _supervise([*stack.processes(), *apps.processes()])
        except KeyboardInterrupt:
            log.info("stopping (interrupted)")
            return 0
        finally:
            _hold_signals()  # a second Ctrl-C must not cut the shutdown short
            apps.stop()
            env_file.unlink(missing_ok=True)
    # leaving the `with` stopped Temporal, Redis, then Postgres


def cmd_services(settings: Settings, args: argparse.Namespace) -> int:
    """Only the servers; their URLs go to <state_dir>/services.env."""
    _stop_on_signals()
    with LocalStack(settings, settings.state_dir) as stack:
        if args.migrate:
            _log_migrations(_migrate(stack.database_url, settings))
        env_file = write_env_file(stack)
        try:
            banner(stack, settings, None, env_file)
            return _supervise(stack.processes())
        except KeyboardInterrupt:
            log.info("stopping (interrupted)")
            return 0
        finally:
            _hold_signals()
            env_file.unlink(missing_ok=True)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    # A session advisory lock serialises migrations: never through a transaction pooler.
    _log_migrations(_migrate(settings.require_database_direct_url(), settings))
    return 0


def cmd_clean_state(settings: Settings, args: argparse.Namespace) -> int:
    """Delete the state folder, unless a running stack still uses it."""
    state_dir = settings.state_dir.absolute()
    busy = [p.name for p in _server_dirs(state_dir) if held_elsewhere(p)]
    if busy:
        log.error("%s is in use (%s); stop `taskplane up` first", state_dir, ", ".join(busy))
        return 1
    socket_dir = socket_dir_for(state_dir / "postgres", 5432)
    for folder in (state_dir, socket_dir):
        if folder.exists():
            shutil.rmtree(folder)
            log.info("deleted %s", folder)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    return _run_module("worker")


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    return _run_module("api")


# -- pieces ------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _migrate(database_url: str, settings: Settings) -> list[str]:
    # Imported here so the launcher's other commands work without the store's deps.
    from store.migrate import migrate
    from store.partitions import PartitionPolicy

    return run_sync(lambda: migrate(database_url, PartitionPolicy.from_settings(settings)))


def _server_dirs(state_dir: Path) -> list[Path]:
    return [state_dir / name for name in ("postgres", "redis", "temporal")]


def _log_migrations(applied: list[str]) -> None:
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    else:
        log.info("database schema is up to date")


def _run_module(name: str) -> int:
    """`python -m <name>` in this process (same interpreter, same signals)."""
    sys.argv = [name]
    runpy.run_module(name, run_name="__main__", alter_sys=True)
    return 0


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _supervise(processes: Sequence[ManagedProcess]) -> int:
    """Block until one of `processes` exits; then report it and return 1."""
    while True:
        for process in processes:
            code = process.poll()
            if code is not None:
                log.error("%s", process.describe_exit(f"exited unexpectedly (code {code})"))
                return 1
        time.sleep(SUPERVISE_INTERVAL_SECONDS)


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM both raise KeyboardInterrupt, which unwinds the stack in order.

    SIGINT is set explicitly: a shell starting us in the background without job
    control (`taskplane up &` in a script) hands us SIGINT *ignored*, and
    Python then keeps it ignored.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _hold_signals() -> None:
    def still_stopping(signum: int, frame: FrameType | None) -> None:
        log.warning("already stopping; please wait (each process gets a grace period)")

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, still_stopping)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


# -- entry point -------------------------------------------------------------------------

Command = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskplane", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Command, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    up = add("up", cmd_up, "run servers, migrations, worker and API until Ctrl-C")
    up.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes to run, each with metrics ports of its own (default 1)",
    )
    up.add_argument(
        "--apis",
        type=_positive,
        default=1,
        help="API processes to run; more than 1 puts nginx in front of them on the API "
        "address (default 1: the API itself)",
    )
    services = add("services", cmd_services, "run only the servers until Ctrl-C")
    services.add_argument("--migrate", action="store_true", help="also apply migrations")
    add("migrate", cmd_migrate, "apply pending migrations to TASKPLANE_DATABASE_URL")
    add("clean-state", cmd_clean_state, "delete the local stack's data (state folder)")
    add("worker", cmd_worker, "run the worker (python -m worker)")
    add("api", cmd_api, "run the API server (python -m api)")
    tasks.register(commands)  # `taskplane tasks …`: cli/tasks.py
    prune.register(commands)  # `taskplane prune …`: cli/prune.py
    schedules.register(commands)  # `taskplane schedules …`: cli/schedules.py
    return parser


EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,  # e.g. TASKPLANE_DATABASE_URL names an unreachable server
    StackError,
    PortInUseError,
    DataDirInUseError,
    ProcessFailedError,
    ConfigurationError,
    NginxNotFoundError,
)


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    settings = get_settings()
    if args.command not in {"worker", "api"}:  # those configure their own logging
        _configure_logging(settings.log_level)
    handler: Command = args.handler
    try:
        return handler(settings, args)
    except EXPECTED_ERRORS as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
