"""`python -m tools.schema_export` (`make schemas`): regenerate the published event contract.

Writes `schemas/json/*.json` (one JSON Schema per event type plus
`index.json`) and `docs/asyncapi.json`, all from the models. Before writing,
each existing schema file (the published contract) is compared with its new
version, and the export refuses a breaking change (see `tools.schema_compat`): the
fix is a new type name (`…v2`), not an edited v1. `--allow-breaking` exists
only for a type that was never released.

`--check` writes nothing and exits 1 when a file is stale or a change breaks;
`make schemas` runs the export, CI can run the check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from schemas.asyncapi import document
from schemas.contract import INDEX_FILE, dumps, render
from tools.schema_compat import breaking_changes

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas" / "json"
ASYNCAPI_FILE = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"


def expected_files(
    schema_dir: Path = SCHEMA_DIR, asyncapi_file: Path = ASYNCAPI_FILE
) -> dict[Path, str]:
    files = {schema_dir / name: text for name, text in render().items()}
    files[asyncapi_file] = dumps(document())
    return files


def published_breaks(schema_dir: Path = SCHEMA_DIR) -> dict[str, list[str]]:
    """Published file name → how the current models break it (only files with problems)."""
    current = render()
    problems: dict[str, list[str]] = {}
    if not schema_dir.is_dir():
        return problems
    for path in sorted(schema_dir.glob("*.json")):
        if path.name == INDEX_FILE:
            continue
        if path.name not in current:
            problems[path.name] = [
                "event type removed (keep it registered while consumers migrate)"
            ]
            continue
        found = breaking_changes(
            json.loads(path.read_text("utf-8")), json.loads(current[path.name])
        )
        if found:
            problems[path.name] = found
    return problems


def stale_files(files: dict[Path, str], schema_dir: Path = SCHEMA_DIR) -> list[Path]:
    stale = [
        path
        for path, text in files.items()
        if not path.is_file() or path.read_text("utf-8") != text
    ]
    if schema_dir.is_dir():
        stale += sorted(path for path in schema_dir.glob("*.json") if path not in files)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.schema_export", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument(
        "--allow-breaking", action="store_true", help="overwrite a published schema incompatibly"
    )
    args = parser.parse_args(argv)
    out = sys.stdout
    breaks = published_breaks()
    for name, problems in breaks.items():
        for problem in problems:
            out.write(f"BREAKING {name}: {problem}\n")
    if breaks and not args.allow_breaking:
        out.write(
            "refusing: a published event type may only gain optional fields;"
            " register a new type (…v2) instead (docs/events.md)\n"
        )
        return 1
    files = expected_files()
    stale = stale_files(files)
    if args.check:
        for path in stale:
            out.write(f"stale: {path}\n")
        return 1 if stale else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for path in stale:
        if path in files:
            path.write_text(files[path], "utf-8")
            out.write(f"wrote {path}\n")
        else:
            path.unlink()
            out.write(f"removed {path}\n")
    if not stale:
        out.write("event contract up to date\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
