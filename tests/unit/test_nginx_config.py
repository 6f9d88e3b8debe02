"""The nginx configurations: the one devstack renders for `taskplane up --apis N`, and the
production example deploy/nginx/taskplane.conf. Both must keep SSE working (no buffering,
a read timeout above the heartbeat), keep-alive HTTP/1.1 to the APIs, and no sticky
sessions; nginx itself must accept them (`nginx -t`)."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

from devstack.nginx import NginxProxy, read_timeout_for, render_config
from settings import Settings
from tests.nginx import nginx_or_skip

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "nginx" / "taskplane.conf"
STICKY = ("ip_hash", "hash ", "sticky", "least_conn")  # anything but plain round robin


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()  # type: ignore[union-attr]
    return float(number) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def directives(text: str, name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]+);", text, flags=re.MULTILINE)


def nginx_accepts(config: Path, prefix: Path) -> None:
    binary = nginx_or_skip()
    checked = subprocess.run(
        [binary, "-t", "-p", str(prefix), "-c", str(config), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_rendered_proxy_suits_sse_and_has_no_sticky_sessions(tmp_path: Path) -> None:
    heartbeat = Settings().sse_heartbeat_seconds
    upstreams = [("127.0.0.1", 9001), ("127.0.0.1", 9002), ("127.0.0.1", 9003)]
    text = render_config(
        tmp_path,
        upstreams,
        listen=("127.0.0.1", 9000),
        read_timeout_seconds=read_timeout_for(heartbeat),
    )
    assert directives(text, "proxy_buffering") == ["off"]
    assert directives(text, "proxy_http_version") == ["1.1"]
    assert directives(text, "proxy_set_header Connection") == ['""']
    assert directives(text, "keepalive")
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        (value,) = directives(text, name)
        assert seconds(value) >= 4 * heartbeat
    assert re.findall(r"^\s*server\s+([\d.]+:\d+)", text, flags=re.MULTILINE) == [
        f"{host}:{port}" for host, port in upstreams
    ]
    assert not any(word in text for word in STICKY)
    assert read_timeout_for(30) == 120  # follows a longer heartbeat


def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    proxy = NginxProxy(tmp_path / "prefix", [("127.0.0.1", 9001), ("127.0.0.1", 9002)])
    nginx_accepts(proxy.write_config(), proxy.prefix)


def test_the_production_example_suits_sse_and_nginx_accepts_it(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    heartbeat = Settings().sse_heartbeat_seconds
    timeouts = directives(text, "proxy_read_timeout") + directives(text, "proxy_send_timeout")
    assert timeouts
    assert all(seconds(value) > 2 * heartbeat for value in timeouts)
    events = re.search(r"location ~ (\S+) \{(.*?)\n    \}", text, flags=re.DOTALL)
    assert events is not None
    pattern, body = events.groups()
    assert re.match(pattern, f"/tasks/{uuid.uuid4()}/events")
    assert not re.match(pattern, f"/tasks/{uuid.uuid4()}/history")
    assert directives(body, "proxy_buffering") == ["off"]
    assert "X-Accel-Buffering" in text  # says why a forgotten line does not break streams
    assert directives(text, "proxy_http_version") == ["1.1"]
    assert directives(text, "keepalive")
    code = re.sub(r"#.*", "", text)
    assert not any(word in code for word in STICKY)
    # nginx -t needs a whole configuration: the example goes in an `http` block.
    wrapper = tmp_path / "nginx.conf"
    temps = "".join(f"{name}_temp_path {tmp_path / name};\n" for name in ("client_body", "proxy"))
    wrapper.write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n{temps}access_log off;\ninclude {EXAMPLE};\n}}\n"
    )
    nginx_accepts(wrapper, tmp_path)
