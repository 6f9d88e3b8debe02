"""A supervised child process: start, wait until ready, stop, explain failures.

Every server of the local stack (and, under `taskplane up`, the worker and the
API) runs as a *foreground* child of the launcher rather than as a daemon, so
its lifetime is the launcher's lifetime:

- Each child gets its own session (process group). Ctrl-C in the terminal then
  reaches only the launcher, which stops the children one by one in a chosen
  order (API, worker, then the servers) instead of all of them at once.
- On Linux each child also asks the kernel for a parent-death signal, so a
  launcher killed with SIGKILL still takes its servers down with it.
- Output goes to a log file, not the terminal; when a child dies or never gets
  ready, the error message carries the tail of what it wrote this time.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pwd
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
DEFAULT_TAIL_LINES = 40


class ProcessFailedError(RuntimeError):
    """A child exited unexpectedly or did not get ready in time."""


class ManagedProcess:
    """One child process with a log file and an orderly stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | int | os.PathLike[str]],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGINT,
        stop_timeout: float = 20.0,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_offset = 0

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Spawn the child; returns at once (see `wait_ready`)."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError(f"{self.name} is already running (pid {self._proc.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log_file.write(f"\n===== {stamp} {self.name}: {shlex.join(self.argv)}\n".encode())
        log_file.flush()
        self._log_offset = log_file.tell()
        self._log_file = log_file

        group: int | None = None
        extra_groups: list[int] | None = None
        if self.user is not None:
            # Popen(user=...) alone keeps root's groups; drop them too.
            group = pwd.getpwnam(self.user).pw_gid
            extra_groups = []
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                group=group,
                extra_groups=extra_groups,
                start_new_session=True,
                preexec_fn=_die_with_parent(self.stop_signal),
            )
        except OSError as exc:
            log_file.close()
            self._log_file = None
            raise ProcessFailedError(f"could not start {self.name}: {exc}") from exc
        log.debug("started %s (pid %d), log: %s", self.name, self._proc.pid, self.log_path)

    def wait_ready(
        self,
        probe: Callable[[], bool],
        *,
        timeout: float,
        interval: float = 0.05,
    ) -> float:
        """Poll `probe` until it returns True; return the seconds it took.

        Raises ProcessFailedError, with the tail of the child's log, when the
        child exits first or the timeout passes (the child is stopped then).
        """
        started = time.monotonic()
        deadline = started + timeout
        while True:
            code = self.poll()
            if code is not None:
                raise ProcessFailedError(
                    self.describe_exit(f"exited with code {code} during startup")
                )
            if probe():
                return time.monotonic() - started
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessFailedError(
                    self.describe_exit(f"was not ready after {timeout:.0f}s and was stopped")
                )
            time.sleep(interval)
            interval = min(interval * 1.5, 0.25)

    def stop(self) -> int | None:
        """Stop the child (its stop signal, then SIGKILL after the grace period).

        Idempotent; returns the exit code, or None if it never started.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            log.debug("stopping %s (pid %d)", self.name, proc.pid)
            began = time.monotonic()
            _signal(proc, self.stop_signal)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop within %.0fs; killing it", self.name, self.stop_timeout
                )
                # The whole group: a server's own children must not outlive it.
                _kill_group(proc.pid)
                proc.wait()
            code = proc.returncode
            clean = code in (0, -self.stop_signal, 128 + self.stop_signal)
            log.log(
                logging.INFO if clean else logging.WARNING,
                "stopped %s in %.2fs (exit code %s)%s",
                self.name,
                time.monotonic() - began,
                code,
                "" if clean else f"; see {self.log_path}",
            )
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return proc.returncode

    # -- state ---------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def poll(self) -> int | None:
        """The exit code if the child has exited, else None (also None if never started)."""
        return self._proc.poll() if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = DEFAULT_TAIL_LINES) -> str:
        """The last `lines` lines the child wrote since its latest start."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_offset)
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe_exit(self, what: str) -> str:
        """An error message: what happened, where the log is, and its tail."""
        tail = self.log_tail() or "(the log is empty)"
        return (
            f"{self.name} {what}; log: {self.log_path}\n"
            f"----- last lines of {self.log_path.name} -----\n{tail}\n-----"
        )


def _signal(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signum)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _die_with_parent(signum: int) -> Callable[[], None] | None:
    """A preexec hook asking Linux to send `signum` to the child when we die.

    It runs in the child after fork and after Popen switched user (a change of
    credentials clears the setting, so it must come after). The setting is tied
    to the *thread* that forked, so children are started from the main thread.
    Elsewhere than Linux there is no such call; the orderly stop still works.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent died before the call above
            os.kill(os.getpid(), signum)

    return hook
