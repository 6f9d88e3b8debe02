"""The published event schemas as a JavaScript consumer compiles them: Ajv, strict mode.

`tools/js/check-schemas.mjs` compiles every file under `schemas/json/` with
Ajv (JSON Schema 2020-12, `strict: true`, ajv-formats) and checks Ajv's verdict
on the same cases the Python decoder is tested with: what `decode_event`
refuses, Ajv must refuse; what a newer producer may add, Ajv must accept.

Needs Node and `npm ci --prefix tools/js` (tests/node_tools.py: skipped locally
without them, a failure in CI).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from schemas import EVENT_MODELS, InvalidEventError, decode_event
from tests.node_tools import TOOLS, node_with
from tests.unit.test_event_contracts import ADDITIONS, GARBAGE, envelope
from tools.schema_export import SCHEMA_DIR

CHECK = TOOLS / "check-schemas.mjs"


@pytest.fixture(scope="module")
def node() -> str:
    return node_with("ajv")


def run_check(node: str, schema_dir: Path, cases: Path | None = None) -> tuple[int, dict[str, Any]]:
    args = [node, str(CHECK), str(schema_dir), *([str(cases)] if cases else [])]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def case(why: str, changes: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(envelope("task.step.progress.v1").to_json())
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    try:
        decode_event(json.dumps(body))
        valid = True
    except InvalidEventError:
        valid = False
    return {"type": "task.step.progress.v1", "event": body, "valid": valid, "why": why}


def test_every_published_schema_compiles_in_ajv_strict_mode_and_agrees_with_python(
    node: str, tmp_path: Path
) -> None:
    cases = [case(why, changes) for why, changes in [*GARBAGE, *ADDITIONS]]
    # The verdicts come from `decode_event`; both kinds must be present for the check to mean much.
    assert {c["valid"] for c in cases} == {True, False}
    cases += [
        {"type": t, "event": json.loads(envelope(t).to_json()), "valid": True, "why": t}
        for t in sorted(EVENT_MODELS)
    ]
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps(cases), "utf-8")
    status, report = run_check(node, SCHEMA_DIR, cases_file)
    assert report["errors"] == []
    assert status == 0
    assert sorted(report["compiled"]) == sorted(EVENT_MODELS)
    assert report["examples"] == len(EVENT_MODELS)
    assert report["cases"] == len(cases)


def test_the_check_fails_on_a_schema_strict_mode_refuses(node: str, tmp_path: Path) -> None:
    """The check can fail: an `x-` keyword, as the schemas once carried, does not compile."""
    for path in SCHEMA_DIR.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    target = tmp_path / "task.paused.v1.json"
    schema = json.loads(target.read_text("utf-8"))
    schema["x-taskplane-terminal"] = False
    target.write_text(json.dumps(schema), "utf-8")
    status, report = run_check(node, tmp_path)
    assert status == 1
    assert [e["type"] for e in report["errors"]] == ["task.paused.v1"]
    assert "unknown keyword" in report["errors"][0]["problem"]
