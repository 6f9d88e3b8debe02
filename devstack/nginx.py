"""nginx (the distribution's binary) in front of several API processes, as a foreground child.

`taskplane up --apis N` and the tests run N APIs on ports of their own and this proxy on
the public address. The configuration is rendered into a folder of its own (the nginx
prefix: `nginx.conf`, the pid file, the temp folders, the access log), so nothing in
/etc/nginx or /var/log/nginx is read or written, and it runs as any user: when not root,
nginx ignores its `user` directive and the workers run as the caller; as root, the
workers drop to `nobody`.

What the proxy must do for Server-Sent Events, and why (the same settings as the
production example in deploy/nginx/taskplane.conf):

- `proxy_buffering off`: an event goes to the client when the API writes it, not when a
  buffer fills (the API also sends `X-Accel-Buffering: no` on its streams).
- `proxy_read_timeout` above the stream heartbeat: an idle stream gets a `: ping` every
  `TASKPLANE_SSE_HEARTBEAT_SECONDS`, so only a dead API stays silent for longer.
- HTTP/1.1 with keep-alive to the upstreams (`Connection ""` and `keepalive`).
- Round robin, no sticky sessions: a stream resumes on any API with `Last-Event-ID`
  (the store is the truth), so an API that dies only costs its clients a reconnect.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from devstack.ports import LOOPBACK, accepts_connections, free_port
from devstack.process import ManagedProcess, ProcessFailedError

log = logging.getLogger(__name__)

NGINX = "/usr/sbin/nginx"  # Debian's `nginx` / `nginx-light`; often not on a user's PATH
MIN_READ_TIMEOUT_SECONDS = 60.0
TEMP_FOLDERS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class NginxNotFoundError(RuntimeError):
    """No nginx binary on this machine."""


def nginx_binary() -> str:
    """The nginx binary: on PATH, or Debian's /usr/sbin/nginx."""
    found = shutil.which("nginx") or (NGINX if os.access(NGINX, os.X_OK) else None)
    if found is None:
        raise NginxNotFoundError(
            "nginx is not installed; install it (Debian: apt-get install nginx-light) "
            "or run a single API (--apis 1)"
        )
    return found


def read_timeout_for(heartbeat_seconds: float) -> float:
    """The proxy's read timeout: several heartbeats, and never below nginx's default."""
    return max(MIN_READ_TIMEOUT_SECONDS, 4 * heartbeat_seconds)


def render_config(
    prefix: Path,
    upstreams: Sequence[tuple[str, int]],
    *,
    listen: tuple[str, int],
    read_timeout_seconds: float,
    worker_connections: int = 4096,
) -> str:
    """nginx.conf for a proxy on `listen` in front of `upstreams` (host, port) pairs."""
    if not upstreams:
        raise ValueError("nginx needs at least one upstream")
    servers = "".join(
        # max_fails=1 fail_timeout=2s: a dead API is skipped for 2 s after one refused
        # connection, then tried again (a restarted one comes back on its own).
        f"        server {host}:{port} max_fails=1 fail_timeout=2s;\n"
        for host, port in upstreams
    )
    temps = "".join(f"    {name}_temp_path {prefix / 'temp' / name};\n" for name in TEMP_FOLDERS)
    timeout = f"{round(read_timeout_seconds * 1000)}ms"
    host, port = listen
    return f"""\
# Rendered by devstack/nginx.py; deploy/nginx/taskplane.conf is the production example.
daemon off;
worker_processes 1;
# Two descriptors per proxied stream (client, API); raised within the hard limit, if it can.
worker_rlimit_nofile {2 * worker_connections + 64};
pid {prefix / "nginx.pid"};
error_log stderr warn;

events {{
    worker_connections {worker_connections};
}}

http {{
{temps}    log_format upstream '$remote_addr "$request" $status $body_bytes_sent '
                        'upstream=$upstream_addr upstream_status=$upstream_status '
                        'request_time=$request_time';
    access_log {prefix / "access.log"} upstream;

    upstream taskplane_api {{
{servers}        keepalive 32;
    }}

    server {{
        listen {host}:{port};
        client_max_body_size 2m;

        location / {{
            proxy_pass http://taskplane_api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout {timeout};
            proxy_send_timeout {timeout};
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


class NginxProxy:
    """nginx on `host:port` (a free port when 0) in front of `upstreams`, config in `prefix`."""

    def __init__(
        self,
        prefix: Path,
        upstreams: Sequence[tuple[str, int]],
        *,
        host: str = LOOPBACK,
        port: int = 0,
        heartbeat_seconds: float = 15.0,
        read_timeout_seconds: float | None = None,
        log_path: Path | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.prefix = prefix.absolute()
        self.upstreams = list(upstreams)
        self.host = host
        self.port = port or free_port(host)
        self.read_timeout_seconds = read_timeout_seconds or read_timeout_for(heartbeat_seconds)
        self.log_path = log_path or self.prefix / "nginx.log"
        self.start_timeout = start_timeout
        self._process: ManagedProcess | None = None

    @property
    def connect_host(self) -> str:
        return LOOPBACK if self.host in {"0.0.0.0", "", "::"} else self.host  # noqa: S104

    @property
    def url(self) -> str:
        return f"http://{self.connect_host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def process(self) -> ManagedProcess | None:
        return self._process

    def write_config(self) -> Path:
        for name in TEMP_FOLDERS:
            (self.prefix / "temp" / name).mkdir(parents=True, exist_ok=True)
        # As root nginx's workers run as `nobody`: they must reach the temp folders (nginx
        # hands those to them itself).
        for folder in (self.prefix, self.prefix / "temp"):
            folder.chmod(0o755)
        self.config_path.write_text(
            render_config(
                self.prefix,
                self.upstreams,
                listen=(self.host, self.port),
                read_timeout_seconds=self.read_timeout_seconds,
            )
        )
        return self.config_path

    def command(self, binary: str) -> list[str]:
        # -e: the error log before the configuration is read (else /var/log/nginx/error.log).
        return [binary, "-p", str(self.prefix), "-c", str(self.config_path), "-e", "stderr"]

    def start(self) -> str:
        """Check the configuration (`nginx -t`), start nginx, return its URL once it listens."""
        binary = nginx_binary()
        began = time.monotonic()
        self.write_config()
        checked = subprocess.run(
            [*self.command(binary), "-t", "-q"], capture_output=True, text=True, check=False
        )
        if checked.returncode != 0:
            raise ProcessFailedError(
                f"nginx refused {self.config_path}: {checked.stderr.strip() or checked.stdout}"
            )
        self._process = ManagedProcess(
            "nginx",
            self.command(binary),
            log_path=self.log_path,
            stop_signal=signal.SIGTERM,  # fast shutdown: open streams are cut, clients resume
            stop_timeout=10.0,
        )
        self._process.start()
        try:
            self._process.wait_ready(
                lambda: accepts_connections(self.port, self.connect_host),
                timeout=self.start_timeout,
            )
        except BaseException:
            self.stop()
            raise
        log.info(
            "nginx ready in %.2fs on %s (%d upstreams)",
            time.monotonic() - began,
            self.url,
            len(self.upstreams),
        )
        return self.url

    def stop(self) -> None:
        """Stop nginx; idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None
