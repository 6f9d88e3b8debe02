"""TCP port helpers for the local stack.

The machine that runs the stack usually runs other things too (its own Postgres
on 5432, Redis on 6379, a second checkout's stack...). Servers whose port is
ours to choose get a free one from the kernel; servers with a well-known port
(Temporal's 7233/8233, the API's 8000) are checked first so the user gets a
clear error instead of a child dying with "address already in use".
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port that nothing listens on right now, below the kernel's ephemeral range.

    Not the kernel's own choice (`bind(0)`): that comes from the ephemeral range, where
    every outgoing connection also takes its local port, so between this call and the
    server's bind a client's connection could take it ("Address already in use"; seen
    with a Redis Cluster node's bus port under the test suite). Below that range only
    listeners bind; a port handed out before by this process is not handed out again.
    """
    low, high = _LISTENER_PORTS
    for _ in range(500):
        port = random.randint(low, high)  # noqa: S311 (spreads ports, no secret)
        if port not in _handed_out and not port_in_use(port, host):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        kernel_port: int = sock.getsockname()[1]
        return kernel_port


def _listener_ports() -> tuple[int, int]:
    """Ports below the ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range)."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    return (min(20000, first // 2), first - 1)


_LISTENER_PORTS = _listener_ports()
_handed_out: set[int] = set()


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when a socket already listens on `host:port` (or on the wildcard address).

    Binds with SO_REUSEADDR, like the servers we start do, so a port that only
    has connections in TIME_WAIT from a previous run counts as free, while a
    live listener (on this address or on 0.0.0.0) counts as taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def accepts_connections(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class PortInUseError(RuntimeError):
    """A port we were told to use is taken by something else."""


def ensure_free(port: int, what: str, hint: str = "", host: str = LOOPBACK) -> None:
    """Raise PortInUseError naming `what` (and a way out) when `port` is taken."""
    if port_in_use(port, host):
        message = f"cannot start {what}: port {host}:{port} is already in use"
        raise PortInUseError(f"{message}; {hint}" if hint else message)
