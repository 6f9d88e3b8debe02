"""`POST /tasks` with a `webhook`, and `GET /tasks/{id}/webhook`, on the real API app.

Private networks are NOT allowed here (the default): every URL that reaches
loopback, private, link-local or other non-public addresses is refused with a
422 problem. Accepted tasks start on a task queue no worker polls, and are
terminated at the end: these tests are about what the API stores and answers.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from schemas.workflow import workflow_id_for
from tests.integration.live_api import LiveApi, live_api

pytestmark = pytest.mark.timeout(60)

PUBLIC_URL = "http://93.184.215.14/hooks/taskplane"  # a public address; never called here
TASK = {"type": "demo.pipeline", "input": {"steps": 1, "step_seconds": 0.1}}


@pytest.fixture(scope="module")
async def api(database_url: str, redis_url: str, temporal_address: str) -> AsyncIterator[LiveApi]:
    async with live_api(
        database_url=database_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        task_queue=f"webhooks-api-{uuid.uuid4().hex[:8]}",
    ) as live:
        yield live


@pytest.fixture(scope="module")
async def http(api: LiveApi) -> AsyncIterator[httpx.AsyncClient]:
    started: list[str] = []

    async def remember(response: httpx.Response) -> None:
        if response.request.method == "POST" and response.status_code in (200, 202):
            await response.aread()
            started.append(response.json()["workflow_id"])

    async with httpx.AsyncClient(
        base_url=api.url, timeout=10, event_hooks={"response": [remember]}
    ) as client:
        yield client
    for workflow_id in set(started):
        await api.services.temporal.client.get_workflow_handle(workflow_id).terminate("test over")


async def create(
    http: httpx.AsyncClient, webhook: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await http.post("/tasks", json={**TASK, "webhook": webhook}, headers=headers)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8000/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "https://localhost:8443/hook",  # a name that resolves to loopback
    ],
)
async def test_urls_reaching_non_public_addresses_are_refused(
    http: httpx.AsyncClient, url: str
) -> None:
    key = uuid.uuid4().hex
    response = await create(http, {"url": url}, key=key)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert "non-public address" in problem["detail"]
    assert "TASKPLANE_WEBHOOK_ALLOW_PRIVATE_NETWORKS" in problem["detail"]
    assert problem["field"] == "webhook.url"


@pytest.mark.parametrize(
    ("webhook", "detail"),
    [
        ({"url": "ftp://93.184.215.14/hook"}, "not valid"),
        ({"url": PUBLIC_URL, "events": ["task.exploded.v1"]}, "unknown webhook event types"),
        ({"url": PUBLIC_URL, "events": []}, "webhook.events is empty"),
        (
            {"url": PUBLIC_URL, "events": ["task.terminated.v2"]},
            "never recorded (readers get them by upcasting): subscribe to task.terminated.v1",
        ),
        (
            {"url": PUBLIC_URL, "secret": "whsec_" + base64.b64encode(b"short").decode()},
            "24 to 64 bytes",
        ),
    ],
)
async def test_bad_webhooks_are_refused(
    http: httpx.AsyncClient, webhook: dict[str, Any], detail: str
) -> None:
    response = await create(http, webhook)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


async def test_a_generated_secret_is_returned_once(http: httpx.AsyncClient) -> None:
    response = await create(http, {"url": PUBLIC_URL, "events": ["task.completed.v1"]})
    assert response.status_code == 202, response.text
    webhook = response.json()["webhook"]
    assert webhook["url"] == PUBLIC_URL
    assert webhook["events"] == ["task.completed.v1"]
    assert webhook["secret"].startswith("whsec_")
    assert len(base64.b64decode(webhook["secret"].removeprefix("whsec_"))) == 32
    state = await http.get(f"/tasks/{response.json()['task_id']}/webhook")
    assert state.status_code == 200
    assert state.json() == {
        "url": PUBLIC_URL,
        "events": ["task.completed.v1"],
        "disabled_reason": None,
        "deliveries": [],
    }
    assert webhook["secret"] not in state.text
    other = await create(http, {"url": PUBLIC_URL})
    assert other.json()["webhook"]["secret"] != webhook["secret"]


async def test_a_given_secret_is_never_echoed(http: httpx.AsyncClient) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    response = await create(http, {"url": PUBLIC_URL, "secret": secret})
    assert response.status_code == 202, response.text
    assert response.json()["webhook"] == {"url": PUBLIC_URL, "events": None}
    assert secret not in response.text


async def test_an_idempotent_repeat_gets_the_same_webhook_and_another_body_a_422(
    http: httpx.AsyncClient,
) -> None:
    key = uuid.uuid4().hex
    first = await create(http, {"url": PUBLIC_URL}, key=key)
    assert first.status_code == 202, first.text
    again = await create(http, {"url": PUBLIC_URL}, key=key)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()  # the same answer, the same generated secret
    changed = await create(http, {"url": PUBLIC_URL + "/other"}, key=key)
    assert changed.status_code == 422, changed.text
    state = await http.get(f"/tasks/{first.json()['task_id']}/webhook")
    assert state.json()["url"] == PUBLIC_URL


async def test_webhook_state_is_404_for_unknown_tasks_and_tasks_without_one(
    http: httpx.AsyncClient, api: LiveApi
) -> None:
    unknown = await http.get(f"/tasks/{uuid.uuid4()}/webhook")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    plain = await http.post("/tasks", json=TASK)
    assert plain.status_code == 202
    assert "webhook" not in plain.json()
    task_id = plain.json()["task_id"]
    assert plain.json()["workflow_id"] == workflow_id_for(task_id)
    missing = await http.get(f"/tasks/{task_id}/webhook")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"task {task_id} has no webhook"
