"""`@taskplane/react` in Chromium, on a page of another origin than the API; and
docs/clients.md's plain-page and React examples of the JS client, run as printed.

The page (clients/js/tests/react-page/, bundled with esbuild from npm) follows a task
with `useTask` and `useTaskEvents` and lists tasks with `useTaskList`, through an API
that requires keys and allows the page's origin (`TASKPLANE_CORS_ORIGINS`): every
request is cross-origin, so CORS preflights, problem+json reads and token-authorized
streams are exercised as a real page meets them. Once the task ended, the component
mounts again without a single request.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.clients_doc import snippet
from tests.e2e.conftest import ProcessStack, api_beside
from tests.node_tools import CLIENTS, built_clients
from tests.polling import until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KEY = "react-page-test-key-0123456789"
PAGE_SOURCE = CLIENTS / "tests" / "react-page"
BUILD = CLIENTS / "tests" / "build"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """The page server's access log is not the test's output."""


def bundle(entry: str, out: str) -> None:
    """esbuild (from npm, in clients/js) bundles a page's module with React into BUILD."""
    node = built_clients()
    subprocess.run(
        [
            node,
            "node_modules/esbuild/bin/esbuild",
            entry,
            "--bundle",
            "--format=esm",
            "--jsx=automatic",
            "--define:process.env.NODE_ENV='production'",
            f"--outfile={BUILD / out}",
            "--log-level=warning",
        ],
        cwd=CLIENTS,
        check=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """The bundled test page, served from an origin of its own."""
    BUILD.mkdir(exist_ok=True)
    bundle("tests/react-page/app.jsx", "react-page.js")
    shutil.copy(PAGE_SOURCE / "index.html", BUILD / "index.html")
    handler = functools.partial(QuietHandler, directory=str(BUILD))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def cors_api(
    page_stack: ProcessStack, services: Any, tmp_path: Path, page_origin: str
) -> Iterator[ProcessStack]:
    with api_beside(
        page_stack, services, tmp_path, api_keys=f"react:{KEY}", cors_origins=page_origin
    ) as api:
        yield api


async def test_use_task_follows_a_task_to_its_end_across_origins(
    page: Page, cors_api: ProcessStack, page_origin: str
) -> None:
    async with httpx.AsyncClient(
        base_url=cors_api.base_url, headers={"Authorization": f"Bearer {KEY}"}
    ) as http:
        created = await http.post(
            "/tasks",
            json={"type": "demo.pipeline", "input": {"steps": 3, "step_seconds": 0.5}},
        )
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]

        async def listed() -> bool:  # lists read the store: a task is in them once its
            # workflow recorded task.created.v1 (until then only GET /tasks/{id} knows it)
            page_of_tasks = (await http.get("/tasks", params={"limit": 5})).json()
            return task_id in {task["task_id"] for task in page_of_tasks["tasks"]}

        await until(listed, within=30, what="the task in the list")  # useTaskList reads once
        await page.goto(f"{page_origin}/?api={cors_api.base_url}&task={task_id}&key={KEY}")
        await expect(page.locator("#ended")).to_have_text("true", timeout=60_000)
        stored = (await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()

    await expect(page.locator("#status")).to_have_text("completed")
    await expect(page.locator("#progress")).to_have_text("100")
    sequences = ",".join(str(event["sequence"]) for event in stored["events"])
    await expect(page.locator("#events")).to_have_text(sequences)
    steps = page.locator("#steps li")
    await expect(steps).to_have_count(3)
    assert (
        await steps.evaluate_all("items => items.map(li => li.dataset.status)") == ["completed"] * 3
    )
    await expect(page.locator("#list li").first).to_be_attached()  # useTaskList, cross-origin
    assert task_id in await page.locator("#list").inner_text()

    requests = await page.evaluate("window.taskplaneRequests")
    assert f"POST /tasks/{task_id}/stream-token" in requests
    # useTask and useTaskEvents of one task share one watch: one stream from the start.
    assert requests.count(f"GET /tasks/{task_id}/events") == 1
    before = len(requests)
    await page.get_by_role("button", name="Hide").click()
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("#status")).to_have_text("completed")
    await expect(page.locator("#events")).to_have_text(sequences)
    assert len(await page.evaluate("window.taskplaneRequests")) == before  # nothing fetched


def guide_snippet(name: str, api: ProcessStack) -> str:
    """A docs/clients.md snippet with the API's address and key in place of the guide's."""
    text = snippet(name)
    assert '"http://localhost:8000"' in text
    assert 'apiKey: "…"' in text
    return text.replace('"http://localhost:8000"', json.dumps(api.base_url)).replace(
        'apiKey: "…"', f"apiKey: {json.dumps(KEY)}"
    )


async def test_the_plain_page_and_react_snippets_of_the_guide_run(
    page: Page, cors_api: ProcessStack, page_origin: str
) -> None:
    """docs/clients.md's page and React examples, as printed but for address and key."""
    shutil.copytree(
        CLIENTS / "packages" / "client" / "dist", BUILD / "taskplane-client", dirs_exist_ok=True
    )
    (BUILD / "guide-page.html").write_text(guide_snippet("js-client-page", cors_api), "utf-8")
    await page.goto(f"{page_origin}/guide-page.html")
    await expect(page.locator("#status")).to_have_text("completed", timeout=60_000)
    assert await page.locator("#bar").evaluate("bar => bar.value") == 100

    (BUILD / "guide-react.jsx").write_text(guide_snippet("js-client-react", cors_api), "utf-8")
    (BUILD / "guide-react-main.jsx").write_text(
        'import { createRoot } from "react-dom/client";\nimport { App } from "./guide-react.jsx";\n'
        'createRoot(document.getElementById("root")).render(<App />);\n',
        "utf-8",
    )
    await asyncio.to_thread(bundle, "tests/build/guide-react-main.jsx", "guide-react.js")
    (BUILD / "guide-react.html").write_text(
        (PAGE_SOURCE / "index.html").read_text("utf-8").replace("react-page.js", "guide-react.js"),
        "utf-8",
    )
    async with httpx.AsyncClient(
        base_url=cors_api.base_url, headers={"Authorization": f"Bearer {KEY}"}
    ) as http:
        created = await http.post(
            "/tasks", json={"type": "demo.pipeline", "input": {"steps": 3, "step_seconds": 1.0}}
        )
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]

        async def running() -> bool:
            return bool((await http.get(f"/tasks/{task_id}")).json()["status"] == "running")

        await until(running, within=30, what="the task runs")
    await page.goto(f"{page_origin}/guide-react.html")
    item = page.locator("li", has_text="completed (over)")
    await expect(item).to_have_count(1, timeout=60_000)
    await expect(item.locator("ol li")).to_have_count(3)
