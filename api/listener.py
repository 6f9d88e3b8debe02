"""The API's listening socket, made here so the kernel can end what uvicorn would keep.

A client that stops reading an event stream makes `send()` block; the SSE
send timeout then ends the response, and uvicorn closes the transport — but
asyncio's `close()` first waits for the write buffer to drain, which a
client that never reads never lets happen, so the socket (and its buffers)
would stay until the client goes away. `TCP_USER_TIMEOUT`, inherited by every
accepted socket, makes the kernel abort a connection whose data has stayed
unacknowledged or untransmitted (zero window) that long, and then asyncio
closes it for real.
"""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int, *, user_timeout_seconds: float | None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    if user_timeout_seconds is not None and hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
        sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(int(user_timeout_seconds * 1000), 1)
        )
    return sock
