"""What the local stack tells people and its children: where everything is.

`taskplane up` and `taskplane services` print a banner of addresses, write an env file
a shell can source, and hand the worker and API the servers' addresses and the
worker's metrics ports (chosen so a second stack on this machine does not collide).
Kept apart from the commands in cli/main.py, which only decide what runs when.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from devstack.ports import free_port, port_in_use
from devstack.stack import LocalStack
from settings import Settings

log = logging.getLogger("taskplane")


def child_env(stack: LocalStack) -> dict[str, str]:
    env = dict(os.environ)
    env.update(service_vars(stack))
    env["PYTHONUNBUFFERED"] = "1"  # their log files fill as things happen
    return env


def service_vars(stack: LocalStack) -> dict[str, str]:
    return {
        "TASKPLANE_DATABASE_URL": stack.database_url,
        "TASKPLANE_REDIS_URL": stack.redis_url,
        "TASKPLANE_TEMPORAL_ADDRESS": stack.temporal_address,
    }


def worker_metrics(
    settings: Settings, number: int = 1
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Worker `number`'s two metrics ports (ours, the Temporal SDK's): for the first, the
    configured ones when free, else free ones (a second stack on this machine must not
    collide); for the others, free ones; the settings for the worker, and the banner's
    rows."""
    env: dict[str, str] = {}
    rows: list[tuple[str, str]] = []
    host = settings.worker_metrics_host
    for name, label, port in (
        ("TASKPLANE_WORKER_METRICS_PORT", "Worker metrics", settings.worker_metrics_port),
        (
            "TASKPLANE_WORKER_METRICS_TEMPORAL_PORT",
            "Temporal SDK metrics",
            settings.worker_metrics_temporal_port,
        ),
    ):
        if port is None:  # turned off
            env[name] = ""
            continue
        if number > 1:
            port = free_port(host)
        elif port == 0 or port_in_use(port, host):
            chosen = free_port(host)
            if port:
                log.warning("%s: port %d is taken; using %d", label, port, chosen)
            port = chosen
        env[name] = str(port)
        if number > 1:
            label = label.replace("Worker", f"Worker {number}").replace("SDK", f"SDK ({number})")
        rows.append((label, f"http://{connect_host(host)}:{port}/metrics"))
    return env, rows


def write_env_file(stack: LocalStack) -> Path:
    """`export` lines a shell (or a test run) can source to reach these servers."""
    path = stack.state_dir / "services.env"
    lines = [f"export {key}={shlex.quote(value)}" for key, value in service_vars(stack).items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def connect_host(bind_host: str) -> str:
    return "127.0.0.1" if bind_host in {"0.0.0.0", "", "::"} else bind_host  # noqa: S104


def banner(
    stack: LocalStack,
    settings: Settings,
    api_url: str | None,
    env_file: Path,
    metrics_rows: Sequence[tuple[str, str]] = (),
) -> None:
    rows: list[tuple[str, str]] = []
    if api_url is not None:
        rows += [("Task page", f"{api_url}/"), ("API", api_url), ("API docs", f"{api_url}/docs")]
        rows += [("API metrics", f"{api_url}/metrics"), *metrics_rows]
    if stack.temporal_ui_url is not None:
        rows.append(("Temporal Web UI", stack.temporal_ui_url))
    rows += [
        ("Temporal gRPC", f"{stack.temporal_address} (namespace {settings.temporal_namespace})"),
        ("Postgres", redact(stack.database_url)),
        ("Redis", redact(stack.redis_url)),
        ("Logs", str(stack.logs_dir)),
        ("Env file", str(env_file)),
    ]
    width = max(len(label) for label, _ in rows)
    body = "".join(f"  {label:<{width}}  {value}\n" for label, value in rows)
    what = "Taskplane is up" if api_url is not None else "Taskplane services are up"
    sys.stdout.write(f"\n{what} (Ctrl-C stops everything):\n{body}\n")
    sys.stdout.flush()


def redact(url: str) -> str:
    """Hide a password in `scheme://user:password@host` URLs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
