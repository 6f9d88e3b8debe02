"""Redis down for a task's whole life → its webhooks still arrive, each once, in order.

A webhook delivery is made by the statement that records its event
(webhooks/enqueue.py) and sent by the dispatcher from Postgres, so the broker is
not on the way at all: with the worker's and the API's Redis stopped before the
task is created, and still stopped when its last webhook is acknowledged, the
receiver gets every event, signed, while every one of them still waits in the
outbox for Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from devstack import EmbeddedRedis
from devstack.ports import free_port
from tests.faults.harness import (
    BrokerStreamView,
    fault_settings,
    pending_rows,
    worker_and_api,
)
from tests.invariants import Event, Observer, check_delivery, load_history
from tests.polling import until
from tests.webhooks_support import running_receiver, verified_payloads
from webhooks.store import WebhookStore

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), log_path=tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_webhooks_are_delivered_while_redis_is_down(
    own_redis: EmbeddedRedis, truth: AsyncConnectionPool, fault_db: str, temporal_address: str
) -> None:
    settings = fault_settings(
        database_url=fault_db,
        redis_url=own_redis.url,
        temporal_address=temporal_address,
        webhook_allow_private_networks=True,
    )
    group = f"faults-webhooks-{settings.task_queue}"
    stream = BrokerStreamView(own_redis.url)
    path = f"/no-redis/{uuid.uuid4().hex[:6]}"
    try:
        with running_receiver() as receiver:
            async with worker_and_api(
                settings, stream, group=group, webhook_allow_private_networks=True
            ) as (worker, http):
                await asyncio.to_thread(own_redis.stop)
                response = await http.post(
                    "/tasks",
                    json={"type": "demo.pipeline", "input": {"steps": 2, "step_seconds": 0.2},
                          "webhook": {"url": receiver.at(path)}},
                )  # fmt: skip
                assert response.status_code == 202, response.text
                task_id = response.json()["task_id"]
                secret = response.json()["webhook"]["secret"]
                store = WebhookStore(truth)

                async def every_webhook_acknowledged() -> bool:
                    history = await load_history(truth, [task_id])
                    deliveries = await store.deliveries(task_id)
                    ended = bool(history) and history[-1].type == "task.completed.v1"
                    return ended and [d.status for d in deliveries] == ["delivered"] * len(history)

                await until(every_webhook_acknowledged, within=45)
                history = await load_history(truth, [task_id])
                # Redis never came back: not one of these events reached the broker.
                assert await pending_rows(truth, [task_id]) == len(history)
                assert worker.webhooks.stats().sent == len(history)
            payloads = verified_payloads(receiver.requests(path), secret)
    finally:
        await stream.close()
    seen = [Event.from_envelope(p) for p in payloads]
    receiver_view = Observer("webhook receiver", seen, ordered=True, tasks=frozenset({task_id}))
    check_delivery(history, [receiver_view], tasks=[task_id])
