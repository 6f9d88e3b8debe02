"""An exclusive lock on a server's data directory.

Two launchers sharing one data directory would corrupt it (two Postgres
postmasters, two Redis servers appending to one AOF, two Temporal servers on
one SQLite file). The lock also makes the stale-state clean-up safe: whoever
holds it knows that a server still running on that directory is an orphan of
an earlier, killed run and not a sibling's live server.

The kernel drops an `flock` when its holder dies, so a killed run never leaves
a lock behind. Python opens files non-inheritable, so the children we start do
not hold it either.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


class DataDirInUseError(RuntimeError):
    """Another live process holds the data directory's lock."""


class DataDirLock:
    """`<directory>/.lock`, held from `acquire()` until `release()`."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        if self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DataDirInUseError(
                f"{self.path.parent} is in use by another process (pid {holder}); "
                "stop that one first, or use another state directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is None:
            return
        self._file.close()  # closing the descriptor drops the flock
        self._file = None


def held_elsewhere(directory: Path) -> bool:
    """True when some live process holds `directory`'s lock right now."""
    lock = DataDirLock(directory)
    if not lock.path.exists():
        return False
    try:
        lock.acquire()
    except DataDirInUseError:
        return True
    lock.release()
    return False
