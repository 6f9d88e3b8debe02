"""The supervised-child helper and the port helpers (plain Python children, no servers)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from devstack.ports import PortInUseError, ensure_free, free_port, port_in_use
from devstack.process import ManagedProcess, ProcessFailedError


def python(code: str, tmp_path: Path, stop_timeout: float = 20.0) -> ManagedProcess:
    return ManagedProcess(
        "child",
        [sys.executable, "-c", code],
        log_path=tmp_path / "child.log",
        stop_timeout=stop_timeout,
    )


def test_stop_ends_a_running_child(tmp_path: Path) -> None:
    child = python("import time; time.sleep(60)", tmp_path)
    child.start()
    assert child.running
    child.stop()
    assert not child.running
    assert child.stop() is not None  # idempotent


def test_a_child_dying_during_startup_is_reported_with_its_log(tmp_path: Path) -> None:
    child = python(
        "print('cannot open the frobnicator', flush=True); raise SystemExit(3)", tmp_path
    )
    child.start()
    with pytest.raises(ProcessFailedError, match="code 3") as failure:
        child.wait_ready(lambda: False, timeout=10)
    assert "cannot open the frobnicator" in str(failure.value)
    assert str(tmp_path / "child.log") in str(failure.value)


def test_a_child_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    child = python("import time; time.sleep(60)", tmp_path)
    child.start()
    with pytest.raises(ProcessFailedError, match="not ready"):
        child.wait_ready(lambda: False, timeout=0.3)
    assert not child.running


def test_a_child_ignoring_its_stop_signal_is_killed(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN);"
        "print('ready', flush=True); time.sleep(60)"
    )
    child = python(code, tmp_path, stop_timeout=0.5)
    child.start()
    child.wait_ready(lambda: "ready" in child.log_tail(), timeout=10)
    assert child.stop() == -9


def test_log_tail_shows_only_the_latest_run(tmp_path: Path) -> None:
    (tmp_path / "child.log").write_text("from an earlier run\n")
    child = python("print('this run', flush=True); import time; time.sleep(60)", tmp_path)
    child.start()
    child.wait_ready(lambda: "this run" in child.log_tail(), timeout=10)
    child.stop()
    assert "earlier" not in child.log_tail()


def test_port_helpers_see_a_listener() -> None:
    port = free_port()
    assert not port_in_use(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert port_in_use(port)
        with pytest.raises(PortInUseError, match=str(port)):
            ensure_free(port, "a test server")
