"""What the embedded servers share: one supervised child under a data-folder lock."""

from __future__ import annotations

from devstack.lock import DataDirLock
from devstack.process import ManagedProcess


class SupervisedServer:
    """`stop()` and `process` for a server that keeps its child in `_process`.

    Each server stops with the signal that lets it keep its data (Postgres: fast
    shutdown; Redis: AOF flush; Temporal: SQLite closed); the data folder stays.
    """

    _process: ManagedProcess | None
    _lock: DataDirLock

    def stop(self) -> None:
        """Stop the server and release its data folder; idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None
        self._lock.release()

    @property
    def process(self) -> ManagedProcess | None:
        return self._process
