"""No code reaches into another object's private attributes (DESIGN.md: "Nothing reaches
into a library's private attributes"): not redis-py's, not psycopg's, not the broker's.

The scan reads every Python file of the project (not `.venv`) with `ast`, so
strings and comments cannot fool it, and flags `x._name` unless `x` is `self`
or `cls` — an object may use its own privates. Dunders are public protocol.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".venv", "venv", ".taskplane", "build", "dist", "node_modules", "__pycache__"}
# Underscored by convention, documented as public: os._exit, and the namedtuple API.
ALLOWED = {"os._exit"}
ALLOWED_NAMES = {"_replace", "_asdict", "_fields", "_make"}


def project_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts[:-1]
        hidden = any(part.startswith(".") or part.endswith(".egg-info") for part in parts)
        if hidden or SKIPPED_DIRS.intersection(parts):
            continue
        files.append(path)
    return sorted(files)


def private_accesses(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
            continue
        if name in ALLOWED_NAMES:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
            continue
        text = ast.unparse(node)
        if text not in ALLOWED:
            found.append((node.lineno, text))
    return sorted(found)


def test_the_scan_finds_what_it_looks_for() -> None:
    source = (
        "pool._pool.clear()\n"
        "x = pubsub.connection._reader\n"
        "super()._send(1)\n"
        "self._mine = broker._fanout\n"
        "y = '_not.code'  # conn._comment\n"
        "self.__mangled = other.__dict__\n"
        "os._exit(0)\n"
    )
    assert [text for _, text in private_accesses(source)] == [
        "pool._pool",
        "pubsub.connection._reader",
        "super()._send",
        "broker._fanout",
    ]


def test_no_project_code_touches_private_attributes_of_other_objects() -> None:
    files = project_files()
    assert len(files) > 50, "the scan found too few files: is ROOT right?"
    assert ROOT / "broker" / "redis_pubsub.py" in files
    offences = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in files
        for line, text in private_accesses(path.read_text(encoding="utf-8"))
    ]
    assert offences == []
