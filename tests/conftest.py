"""Real servers for the test suite, started the way `taskplane up` starts them.

One session-scoped fixture per server, each started only when a test asks for
it: a run of the unit tests starts nothing, and a test that needs only Redis
does not wait for Temporal. `services` bundles all three for end-to-end tests.

Each fixture exports its URL as the matching `TASKPLANE_*` variable for the
session, so worker and API processes started by e2e tests reach the same
servers. To test against servers you already run, set
`TASKPLANE_TEST_DATABASE_URL`, `TASKPLANE_TEST_REDIS_URL` and/or
`TASKPLANE_TEST_TEMPORAL_ADDRESS`; those are used instead of starting one
(the migrations still run against that database; they are idempotent).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devstack import EmbeddedPostgres, EmbeddedRedis, TemporalDevServer
from devstack.aio import run_sync
from devstack.ports import free_port
from telemetry.logs import JsonFormatter
from telemetry.tracing import install_tracer_provider
from tests.postgres_home import postgres_home

SERVER_FIXTURES = frozenset({"database_url", "redis_url", "temporal_address", "services"})


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str
    temporal_address: str
    state_dir: Path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep unit tests free of servers: asking for one there is a usage error."""
    unit_dir = Path(__file__).parent / "unit"
    for item in items:
        if item.path.is_relative_to(unit_dir):
            wanted = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            if wanted:
                raise pytest.UsageError(
                    f"{item.nodeid} is a unit test but uses {sorted(wanted)}; "
                    "move it under tests/integration or tests/e2e"
                )


@pytest.fixture(scope="session")
def devstack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's state folder: one subfolder per server, plus `logs/`."""
    return tmp_path_factory.mktemp("devstack")


@pytest.fixture(scope="session")
def database_url(devstack_dir: Path) -> Iterator[str]:
    """A migrated Postgres database."""
    url = os.environ.get("TASKPLANE_TEST_DATABASE_URL")
    if url:
        _migrate(url)
        with _exported("TASKPLANE_DATABASE_URL", url):
            yield url
        return
    with postgres_home() as home:
        # The log stays with the session's other logs: the server writes it through a
        # descriptor it inherits, not by path.
        server = EmbeddedPostgres(
            home / "postgres", log_path=devstack_dir / "logs" / "postgres.log"
        )
        url = server.start()
        try:
            _migrate(url)
            with _exported("TASKPLANE_DATABASE_URL", url):
                yield url
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_url(devstack_dir: Path) -> Iterator[str]:
    url = os.environ.get("TASKPLANE_TEST_REDIS_URL")
    server = None
    if not url:
        server = EmbeddedRedis(devstack_dir / "redis", log_path=devstack_dir / "logs" / "redis.log")
        url = server.start()
    try:
        with _exported("TASKPLANE_REDIS_URL", url):
            yield url
    finally:
        if server is not None:
            server.stop()


@pytest.fixture(scope="session")
def temporal_address(devstack_dir: Path) -> Iterator[str]:
    """A Temporal dev server (headless, free port) with Taskplane's search attributes."""
    address = os.environ.get("TASKPLANE_TEST_TEMPORAL_ADDRESS")
    server = None
    if not address:
        server = TemporalDevServer(
            devstack_dir / "temporal",
            port=free_port(),
            ui_port=None,
            log_path=devstack_dir / "logs" / "temporal.log",
        )
        address = server.start()
    try:
        with _exported("TASKPLANE_TEMPORAL_ADDRESS", address):
            yield address
    finally:
        if server is not None:
            server.stop()


@pytest.fixture(scope="session")
def services(
    devstack_dir: Path, database_url: str, redis_url: str, temporal_address: str
) -> Services:
    return Services(database_url, redis_url, temporal_address, devstack_dir)


def _migrate(url: str) -> None:
    from store.migrate import migrate  # the store's code, loaded only when a DB is wanted

    run_sync(lambda: migrate(url))


@contextmanager
def _exported(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


# Captures for the API's request logs and spans (observability, SSE handoff, tracing).
@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What `api.middleware` logs during the test, as JSON lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("api.middleware")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended during the test, through the process's tracer provider."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install_tracer_provider(provider)
    try:
        yield exporter
    finally:
        install_tracer_provider(None)
        provider.shutdown()
