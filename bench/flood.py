"""The noisy tenant's creations from a process of their own, on raw HTTP/1.1 sockets.

`python -m bench.flood URL KEY COUNT IN_FLIGHT STEP_SECONDS` sends COUNT `POST /tasks`
(`demo.pipeline`, one step of STEP_SECONDS) with IN_FLIGHT keep-alive connections, each
sending its next request when its answer has come, and prints one line per task as it
is answered: `task_id sent_at answered_seconds` (wall clock, the clock Postgres stamps
events with), and last `refused N` (429s) and `cpu SECONDS`, its own CPU time. A 429
is honoured as a well-behaved client would: that connection waits the answer's
`Retry-After` seconds and sends the same creation again (`sent_at` is then the retry's).
Any other non-2xx answer ends the process with status 1.

Why not httpx in the bench process (bench/flow_tenants.py until session 12): the flood
cost the bench ~5 ms of CPU a creation there, on the two cores the product runs on, and
its 32 requests in flight shared the event loop that stamps the quiet tenant's `POST`s
and reads their answers, so part of the quiet tenant's measured wait was the bench's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import NamedTuple
from urllib.parse import urlsplit

from bench.procs import REPO_ROOT


class FloodOutcome(NamedTuple):
    cpu_seconds: float  # the flood process's own CPU
    refused: int  # 429s answered, each waited out and sent again


def _request(host: str, key: str, step_seconds: float) -> bytes:
    body = json.dumps(
        {"type": "demo.pipeline", "input": {"steps": 1, "step_seconds": step_seconds}}
    ).encode()
    head = (
        f"POST /tasks HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, float, bytes]:
    """One response with a Content-Length body: (status, Retry-After seconds, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, retry_after = 0, 1.0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "retry-after":
            retry_after = float(value)
    return status, retry_after, await reader.readexactly(length)


async def flood(url: str, key: str, count: int, in_flight: int, step_seconds: float) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = _request(f"{host}:{port}", key, step_seconds)
    left, refused = count, 0
    out = sys.stdout

    async def connection() -> None:
        nonlocal left, refused
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while left > 0:
                left -= 1
                sent = time.time()
                writer.write(request)
                status, retry_after, body = await _answer(reader)
                while status == 429:
                    refused += 1
                    await asyncio.sleep(retry_after)
                    sent = time.time()
                    writer.write(request)
                    status, retry_after, body = await _answer(reader)
                if not 200 <= status < 300:
                    raise RuntimeError(f"POST /tasks answered {status}: {body[:300]!r}")
                task_id = json.loads(body)["task_id"]
                out.write(f"{task_id} {sent:.6f} {time.time() - sent:.6f}\n")
                out.flush()
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(in_flight)))
    out.write(f"refused {refused}\n")
    out.write(f"cpu {time.process_time():.3f}\n")


async def run_flood(
    url: str,
    key: str,
    count: int,
    in_flight: int,
    step_seconds: float,
    sent: dict[str, float],
    answered: list[float],
    half: tuple[int, asyncio.Event],
) -> FloodOutcome:
    """The flood from a process of its own (this module's `main`), its lines read as they
    come: `half` is set once `half[0]` tasks are answered."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.flood",
        url,
        key,
        str(count),
        str(in_flight),
        str(step_seconds),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    cpu, refused = 0.0, 0
    try:
        async for line in process.stdout:
            fields = line.decode().split()
            if fields[0] == "cpu":
                cpu = float(fields[1])
                continue
            if fields[0] == "refused":
                refused = int(fields[1])
                continue
            sent[fields[0]] = float(fields[1])
            answered.append(float(fields[2]))
            if len(sent) >= half[0]:
                half[1].set()
        if await process.wait() != 0:
            raise RuntimeError("the flood failed (its stderr says why)")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return FloodOutcome(cpu, refused)


def main(argv: list[str]) -> None:
    url, key, count, in_flight, step_seconds = argv
    try:
        asyncio.run(flood(url, key, int(count), int(in_flight), float(step_seconds)))
    except RuntimeError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
