"""Stale Postgres lock files, and the orphaned postmaster that may stand behind one.

A launcher killed without a chance to stop its Postgres leaves `postmaster.pid` and
the socket's lock file behind, and sometimes the postmaster itself. Deciding whether
such a file may go (and stopping an orphan of our own data directory) is process
inspection, not running a server: it lives here, apart from `EmbeddedPostgres`.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger("devstack.postgres")


def clear_stale_lock_file(lock_file: Path, pgdata: Path) -> None:
    """Remove a lock file left by a killed run, stopping an orphaned postmaster.

    Postgres clears a stale lock file itself only when it can tell the PID in
    it is gone. A PID reused by an unrelated process (common after a reboot or
    in containers) makes it refuse to start, so we decide here. We hold the
    data directory's lock, so a live postmaster of *this* data directory is
    an orphan of an earlier launcher and is ours to stop.
    """
    try:
        first_line = lock_file.read_text().split("\n", 1)[0].strip()
    except (FileNotFoundError, NotADirectoryError):
        return
    pid = abs(int(first_line)) if first_line.lstrip("-").isdigit() else 0
    cmdline = _cmdline(pid) if pid else None
    if cmdline is not None and _is_postmaster_of(cmdline, pgdata):
        log.warning("stopping an orphaned postgres (pid %d) on %s", pid, pgdata)
        _stop_pid(pid)  # its own shutdown removes the file
        if not lock_file.exists():
            return
    elif pid and cmdline is None and _pid_alive(pid):
        # No /proc (macOS): we cannot tell what it is; let Postgres judge.
        return
    log.info("removing stale %s (pid %s)", lock_file.name, pid or "unknown")
    lock_file.unlink(missing_ok=True)


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def _is_postmaster_of(cmdline: list[str], pgdata: Path) -> bool:
    return bool(cmdline) and Path(cmdline[0]).name == "postgres" and str(pgdata) in cmdline


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_pid(pid: int, timeout: float = 30.0) -> None:
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.1)
