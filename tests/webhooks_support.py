"""Webhook tests' helpers: a real HTTP receiver in a thread, and a database of their own.

The receiver is `http.server` on a free loopback port: it records every request
(headers and raw body, for signature checks with the `standardwebhooks`
package afterwards) and answers as the test's per-path `Plan` says — a status,
after an optional delay — so a test can fail the first attempts, time out, or
answer 410.

Webhook deliveries are claimed by ANY worker connected to the same database, so
a test whose settings differ from the session stack's (private networks
allowed, fast retries) runs on a fresh database on the session's Postgres.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    """One request, recorded when it arrived, with the status the plan gave it."""

    path: str
    headers: dict[str, str]
    body: str
    status: int
    attempt: int  # of this webhook-id at this path, from 1

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.body)
        return body


# (attempt of this webhook-id at this path, the JSON body) -> (status, delay in seconds).
# A delay longer than the sender's timeout is a timeout; its status is then never read.
Plan = Callable[[int, dict[str, Any]], tuple[int, float]]


def always(status: int) -> Plan:
    return lambda _attempt, _payload: (status, 0.0)


@dataclass
class Receiver:
    url: str
    plans: dict[str, Plan] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str, plan: Plan | None = None) -> str:
        """The URL of `path` (answered with 200 unless a plan says otherwise)."""
        if plan is not None:
            self.plans[path] = plan
        return f"{self.url}{path}"

    def requests(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def accepted(self, path: str) -> list[Received]:
        """The requests answered 2xx in time: what the receiver took in, in arrival order."""
        return [r for r in self.requests(path) if 200 <= r.status < 300]


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                attempt = 1 + sum(
                    1
                    for r in receiver.received
                    if r.path == self.path
                    and r.headers.get("webhook-id") == headers.get("webhook-id")
                )
                plan = receiver.plans.get(self.path, always(200))
                status, delay = plan(attempt, json.loads(body))
                if delay:
                    status = 599  # the sender gives up first: never taken in
                receiver.received.append(Received(self.path, headers, body, status, attempt))
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender gave up waiting (a planned timeout)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def verified_payloads(requests: list[Received], secret: str) -> list[dict[str, Any]]:
    """Each request's JSON body, after `standardwebhooks` verified its signature."""
    webhook = Webhook(secret)
    return [webhook.verify(r.body, r.headers) for r in requests]
