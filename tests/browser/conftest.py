"""Headless Chromium against the real stack: the task page as a person sees it.

Playwright's Python package drives Debian's `chromium` (`/usr/bin/chromium`,
installed by `.ci/run`); `playwright install` and its downloaded browsers are
never used. One worker + API pair (`running_stack`) serves every test here;
each test gets a fresh browser context (its own sessionStorage and cookies).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.e2e.conftest import ProcessStack, running_stack

CHROMIUM = Path(os.environ.get("TASKPLANE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("TASKPLANE_TEST_REQUIRE_CHROMIUM") == "1":  # CI: a skip would hide them
        raise pytest.UsageError(f"no Chromium at {CHROMIUM}, and CI requires the browser tests")
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    browser_dir = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(browser_dir):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def page_stack(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    """A worker and an API for the browser tests; `retry:` short so reconnects are quick."""
    log_dir = tmp_path_factory.mktemp("browser-logs")
    with running_stack(
        services, log_dir, sse_retry_ms="300", temporal_ui_url="http://temporal-ui.test:8233"
    ) as processes:
        yield processes


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    the_context = await browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        yield the_context
    finally:
        await the_context.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    the_page = await context.new_page()
    errors: list[str] = []
    the_page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield the_page
    assert not errors, f"JavaScript errors on the page: {errors}"
