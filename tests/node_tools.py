"""The Node tools of `tools/js/` (Ajv, Spectral, the AsyncAPI CLI), for the tests that check
the published contract as outside consumers read it.

They need Node and `npm ci --prefix tools/js` (the versions its package-lock.json
pins). Without them such a test is skipped locally; CI sets
`TASKPLANE_TEST_REQUIRE_NODE=1` (`.ci/run` installs both), and then a missing tool
fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "js"


def node_with(package: str) -> str:
    """The `node` executable, once `package` is installed under tools/js; else skip/fail."""
    found = shutil.which("node")
    if found is not None and (TOOLS / "node_modules" / package / "package.json").is_file():
        return found
    missing = "no `node` on PATH" if found is None else f"{package} not installed"
    _missing(f"{missing} (npm ci --prefix tools/js)")


def node_executable() -> str:
    """The `node` executable, for a script that needs no package; else skip/fail."""
    found = shutil.which("node")
    if found is not None:
        return found
    _missing("no `node` on PATH")


def _missing(what: str) -> NoReturn:
    if os.environ.get("TASKPLANE_TEST_REQUIRE_NODE") == "1":  # CI: a skip would hide it
        pytest.fail(f"{what}, and CI requires the Node checks", pytrace=False)
    pytest.skip(what)
