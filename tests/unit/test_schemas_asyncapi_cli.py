"""The AsyncAPI document as its own tooling reads it: the official AsyncAPI CLI.

`asyncapi validate` (`@asyncapi/cli`, pinned by tools/js/package-lock.json) parses
docs/asyncapi.json, resolves its references, validates it against the AsyncAPI
specification and runs the CLI's default ruleset. The document must come out with
no error and no warning (the one `information` the CLI gives, "3.1.0 is the
latest AsyncAPI version", is not a problem: the document is AsyncAPI 3.0.0).

The CLI runs offline: a throwaway HOME and config path, anonymous usage metrics
off (`CI=true` and a config that disables them), no update check. Needs Node and
`npm ci --prefix tools/js --ignore-scripts` (tests/node_tools.py: skipped locally
without them, a failure in CI). The install scripts the CLI's packages carry are
not needed to validate: shell autocompletion, usage pings, removing a build folder.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.node_tools import TOOLS, node_with
from tools.schema_export import ASYNCAPI_FILE

CLI = TOOLS / "node_modules" / "@asyncapi" / "cli" / "bin" / "run_bin"
ERROR, WARNING = 0, 1  # the `severity` of a diagnostic (2 is information, 3 a hint)


@pytest.fixture(scope="module")
def node() -> str:
    return node_with("@asyncapi/cli")


def validate(node: str, document: Path, home: Path) -> tuple[int, list[dict[str, Any]], str]:
    """Exit status, diagnostics and printed output of `asyncapi validate` on `document`."""
    (home / "analytics.json").write_text(
        json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "test"}),
        "utf-8",
    )
    env = {
        "PATH": str(Path(node).parent),
        "HOME": str(home),
        "CI": "true",
        "ASYNCAPI_METRICS_CONFIG_PATH": str(home / "analytics.json"),
        "ASYNCAPI_SKIP_NEW_VERSION_CHECK": "true",
        "SUPPRESS_NO_CONFIG_WARNING": "1",
    }
    saved = home / "diagnostics.json"
    saved.unlink(missing_ok=True)
    args = [node, str(CLI), "validate", str(document), "--fail-severity", "warn"]
    args += ["--diagnostics-format", "json", "--save-output", str(saved)]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=300, check=False, env=env, cwd=home
    )
    output = f"{done.stdout}\n{done.stderr}"
    assert saved.is_file(), output
    diagnostics: list[dict[str, Any]] = json.loads(saved.read_text("utf-8"))
    return done.returncode, diagnostics, output


def test_the_official_asyncapi_cli_validates_the_document(node: str, tmp_path: Path) -> None:
    status, diagnostics, output = validate(node, ASYNCAPI_FILE, tmp_path)
    problems = [d for d in diagnostics if d["severity"] in (ERROR, WARNING)]
    assert problems == [], output
    assert status == 0, output


def test_the_cli_refuses_a_document_the_specification_refuses(node: str, tmp_path: Path) -> None:
    """The check can fail: without its required `info`, the document is not AsyncAPI."""
    document = json.loads(ASYNCAPI_FILE.read_text("utf-8"))
    del document["info"]
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(document), "utf-8")
    status, diagnostics, _ = validate(node, broken, tmp_path)
    assert status == 1
    errors = [d["message"] for d in diagnostics if d["severity"] == ERROR]
    assert any('"info"' in message for message in errors), diagnostics
