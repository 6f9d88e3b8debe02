"""The embedded servers really run, answer, and keep their data across a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg.conninfo import conninfo_to_dict
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from devstack import EmbeddedPostgres, EmbeddedRedis
from devstack.postgres import socket_dir_for
from tests.postgres_home import postgres_home


def dead_pid() -> int:
    """The PID of a process that has already exited (as after a crash)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_postgres_answers_and_keeps_data_across_restart() -> None:
    with postgres_home() as home:  # not tmp_path: see postgres_home
        _answers_and_keeps_data_across_restart(home)


def _answers_and_keeps_data_across_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    url = server.start()
    try:
        assert "host=" in url
        assert url.startswith("postgresql://postgres@/taskplane?")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            conn.execute("CREATE TABLE kept (note text)")
            conn.execute("INSERT INTO kept VALUES ('survives a restart')")
    finally:
        server.stop()

    # A killed run leaves its postmaster.pid behind; the next start copes.
    pidfile = tmp_path / "pg" / "pgdata" / "postmaster.pid"
    pidfile.write_text(f"{dead_pid()}\n{tmp_path / 'pg' / 'pgdata'}\n0\n5432\n\n\n0 0\nready\n")

    again = server.start()
    try:
        assert again == url
        with psycopg.connect(again) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [("survives a restart",)]
    finally:
        server.stop()
    assert not pidfile.exists()


def test_postgres_never_listens_on_tcp(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SHOW listen_addresses").fetchone()
    assert row == ("",)


def test_long_state_paths_get_a_short_socket_folder(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5)
    folder = socket_dir_for(deep, 5432)
    assert len(os.fsencode(folder / ".s.PGSQL.5432.lock")) <= 100
    assert folder == socket_dir_for(deep, 5432)  # same state folder, same socket folder


def test_redis_answers_and_keeps_keys_across_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        assert not url.endswith(":6379/0")
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.set("kept", "yes")
        client.close()
    finally:
        server.stop()

    again = server.start()
    try:
        assert again == url  # the port is remembered while it is free
        client = redis.Redis.from_url(again)
        assert client.get("kept") == b"yes"
        client.close()
    finally:
        server.stop()


async def test_temporal_accepts_clients_and_has_search_attributes(temporal_address: str) -> None:
    client = await Client.connect(temporal_address)
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert response.custom_attributes["TaskStatus"] == keyword
    assert response.custom_attributes["TaskType"] == keyword


def test_the_session_postgres_lives_outside_pytests_temp_root(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Another pytest session starting on the machine makes pytest's temp root private
    (0700); a Postgres whose data sits below it would PANIC at its next checkpoint."""
    if os.environ.get("TASKPLANE_TEST_DATABASE_URL"):
        pytest.skip("the session uses a Postgres it did not start")
    socket_dir = Path(str(conninfo_to_dict(database_url)["host"]))
    assert socket_dir.is_dir()
    pytest_root = tmp_path_factory.getbasetemp().parent  # /tmp/pytest-of-<user>
    assert not socket_dir.resolve().is_relative_to(pytest_root.resolve())
