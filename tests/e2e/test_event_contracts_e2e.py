"""The event contract on the real processes: garbage on the broker, schemas over HTTP, OpenAPI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from broker import topic_for
from broker.redis import RedisBroker
from schemas import EVENT_MODELS, MAX_EVENT_BYTES, decode_event
from schemas.contract import render
from schemas.envelope import schema_id
from tests.sse import Frame, read_frames

pytestmark = pytest.mark.e2e

INVALID_METRIC = "taskplane_sse_invalid_messages_total"


async def invalid_messages(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(INVALID_METRIC):
            return float(line.split()[-1])
    return 0.0


def garbage(task_id: str, next_sequence: int) -> list[str]:
    """One message per way a broker payload can be wrong, most aimed at the next sequence."""

    def envelope(**changes: Any) -> str:
        body: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"garbage-{len(changes)}-{sorted(changes)}",
            "source": "/taskplane",
            "type": "task.resumed.v1",
            "subject": task_id,
            "time": "2026-01-02T03:04:05.000001Z",
            "datacontenttype": "application/json",
            "data": {},
            "sequence": next_sequence,
        }
        for key, value in changes.items():
            if value is None:
                body.pop(key)
            else:
                body[key] = value
        return json.dumps(body)

    return [
        "not json at all",
        '{"specversion": "1.0", "id": ',
        "[]",
        envelope(type="task.exploded.v1"),
        # (An unknown data field is no longer garbage: readers ignore it, docs/events.md.)
        envelope(type="task.step.failed.v1", data={"index": 1, "name": "s", "error": "e"}),
        envelope(type="task.step.progress.v1", data={"index": "1", "name": "s", "percent": 5}),
        envelope(sequence=None),
        envelope(sequence=-1),
        envelope(sequence="7"),
        envelope(specversion="0.3"),
        envelope(time="2026-01-02T03:04:05"),
        envelope(subject=None),
        envelope(type="task.paused.v1", data={"reason": "x" * MAX_EVENT_BYTES}),
    ]


async def next_event(frames: AsyncIterator[Frame]) -> Frame:
    async for frame in frames:
        if frame.is_event:
            return frame
    raise AssertionError("the stream ended early")


async def test_garbage_on_a_live_topic_is_skipped_and_the_client_keeps_its_stream(
    client: httpx.AsyncClient, redis_url: str
) -> None:
    response = await client.post(
        "/tasks", json={"type": "demo.pipeline", "input": {"steps": 2, "step_seconds": 0.2}}
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    # Paused at a step boundary, the task is quiet: the garbage cannot race a real event.
    assert (await client.post(f"/tasks/{task_id}/pause")).status_code == 202

    broker = RedisBroker(redis_url, client_name="taskplane-test-garbage")
    await broker.connect()
    received: list[Frame] = []
    try:
        async with client.stream("GET", f"/tasks/{task_id}/events", timeout=60) as stream:
            frames = aiter(read_frames(stream))
            while not received or received[-1].event != "task.paused.v1":
                received.append(await next_event(frames))
            paused_at = int(received[-1].id or 0)

            before = await invalid_messages(client)
            junk = garbage(task_id, paused_at + 1)
            for payload in junk:
                await broker.publish(topic_for(task_id), payload)
            deadline = time.monotonic() + 10
            while await invalid_messages(client) < before + len(junk):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            counted = await invalid_messages(client) - before

            assert (await client.post(f"/tasks/{task_id}/resume")).status_code == 202
            while received[-1].event not in {"task.completed.v1", "task.failed.v1"}:
                received.append(await next_event(frames))
    finally:
        await broker.close()

    assert [int(frame.id or 0) for frame in received] == list(range(1, len(received) + 1))
    for frame in received:
        envelope = decode_event(frame.data)
        assert (envelope.type, envelope.sequence) == (frame.event, int(frame.id or 0))
        assert envelope.subject == task_id
        # Every recorded event names its schema; the API serves it under that name.
        assert envelope.dataschema == schema_id(envelope.type)
    after_pause = [frame.event for frame in received[paused_at:]]
    assert after_pause[0] == "task.resumed.v1"
    assert after_pause[-1] == "task.completed.v1"
    # The stream's own copy of each event is the stored one, not a forged look-alike.
    history = (await client.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()
    stored = {item["sequence"]: item for item in history["events"]}
    for frame in received:
        assert json.loads(frame.data) == stored[int(frame.id or 0)]
    assert counted == len(junk)


async def test_the_api_serves_the_published_schemas(client: httpx.AsyncClient) -> None:
    published = render()
    index = await client.get("/schemas/events")
    assert index.status_code == 200
    assert index.text == published["index.json"]
    assert sorted(index.json()["events"]) == sorted(EVENT_MODELS)
    for event_type, entry in index.json()["events"].items():
        by_name = await client.get(f"/schemas/events/{event_type}")
        assert by_name.status_code == 200
        assert by_name.headers["content-type"].startswith("application/schema+json")
        assert by_name.text == published[entry["schema"]]
        # The index's relative file names resolve against the index URL.
        by_file = await client.get(f"/schemas/events/{entry['schema']}")
        assert by_file.text == by_name.text
        # An event's `dataschema` (the schema's `$id`) works as the name too.
        by_id = await client.get(f"/schemas/events/{entry['$id']}")
        assert by_id.text == by_name.text
    missing = await client.get("/schemas/events/task.exploded.v1")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404
    assert (await client.get("/schemas/events/index.json")).status_code == 404


async def test_openapi_describes_the_sse_endpoint(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/tasks/{task_id}/events"]["get"]
    headers = [p for p in operation["parameters"] if p["in"] == "header"]
    assert [p["name"].lower() for p in headers] == ["last-event-id"]
    ok = operation["responses"]["200"]
    assert set(ok["content"]) == {"text/event-stream"}
    assert "Last-Event-ID" in ok["description"]
    for event_type in EVENT_MODELS:
        assert f"`/schemas/events/{event_type}`" in ok["description"]
    assert (
        "id: 4\nevent: task.step.progress.v1\ndata: {"
        in ok["content"]["text/event-stream"]["example"]
    )
    assert {"204", "404"} <= set(operation["responses"])
    assert "application/problem+json" in operation["responses"]["404"]["content"]
