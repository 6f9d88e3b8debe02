"""Small helpers the `taskplane tasks …` commands share: JSON in, JSON out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO


class UsageError(Exception):
    """Arguments that parse but make no sense (exit code 2)."""


def parse_json_object(raw: str, what: str = "--input") -> dict[str, Any]:
    """A JSON object given inline or as `@file.json`."""
    try:
        text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
    except OSError as exc:
        raise UsageError(f"{what}: cannot read {raw[1:]}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object")
    return value


def write_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=2) + "\n")
