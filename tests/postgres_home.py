"""Where the tests keep an embedded Postgres's data: not under pytest's temp root."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def postgres_home() -> Iterator[Path]:
    """A folder for an embedded Postgres's data, outside pytest's temp root; removed after.

    As root, the embedded Postgres runs as an unprivileged system user, which must
    traverse every folder above its data. Every pytest session that starts on the
    machine makes `/tmp/pytest-of-<user>` private again (mode 0700, pytest's own
    hardening), so a Postgres kept under it loses its data folder whenever another
    session starts: it PANICs at its next checkpoint ("could not open file
    .../global/pg_control: Permission denied") and the running session's tests fail
    (seen in full runs next to other runs). A folder of our own is left alone.
    """
    folder = Path(tempfile.mkdtemp(prefix="taskplane-test-pg-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)
