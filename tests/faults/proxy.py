"""A TCP proxy a test controls: the network between a client and a real server, breakable.

`FaultProxy` listens on 127.0.0.1 and forwards each connection to the target (a TCP
address, or a unix socket — our embedded Postgres listens only on one). `outage()`
cuts every open connection and refuses new ones, as a server that went away does,
until `restore()`; `reset()` cuts every open connection and goes on accepting new
ones (a server restart, a NAT or load balancer dropping its state); `stall()` holds
every byte in both directions, connections open, until `flow()` (a network or a
server that stops answering without refusing). It runs in the test's event loop,
so it serves clients in the test process and in child processes alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass
class FaultProxy:
    target_host: str | None = None
    target_port: int | None = None
    target_unix: str | None = None
    port: int = 0
    connections: int = 0  # accepted since start
    held: int = 0  # chunks that arrived while stalled (the stall hit live traffic)
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._flowing.set()

    @property
    def down(self) -> bool:
        return self._server is None

    async def start(self) -> None:
        """Listen (again, on the same port once it had one)."""
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock)

    def stall(self) -> None:
        """Hold every byte from now on (connections stay open; new ones are accepted)."""
        self._flowing.clear()

    def flow(self) -> None:
        """Let the held bytes and everything after them through again."""
        self._flowing.set()

    async def outage(self) -> None:
        """Stop listening (new connections are refused) and reset every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        await self.reset()

    async def reset(self) -> None:
        """Reset every open connection; new ones are accepted as before."""
        for writer in list(self._writers):
            with contextlib.suppress(OSError):
                sock = writer.get_extra_info("socket")
                if sock is not None and sock.family != socket.AF_UNIX:
                    # RST rather than FIN: the client sees the connection die, not end.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.outage()

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target_unix is not None:
            return await asyncio.open_unix_connection(self.target_unix)
        assert self.target_host is not None
        assert self.target_port is not None
        return await asyncio.open_connection(self.target_host, self.target_port)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await source.read(CHUNK):
                if not self._flowing.is_set():
                    self.held += 1
                    await self._flowing.wait()
                sink.write(chunk)
                await sink.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await self._open_target()
        except OSError:
            writer.close()
            return
        self._writers.update((writer, upstream_writer))
        pipes = [
            asyncio.create_task(self._pipe(reader, upstream_writer)),
            asyncio.create_task(self._pipe(upstream_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            self._pipes.difference_update(pipes)
            for end in (writer, upstream_writer):
                end.close()
                self._writers.discard(end)


@asynccontextmanager
async def fault_proxy(
    *, host: str | None = None, port: int | None = None, unix: str | None = None
) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(target_host=host, target_port=port, target_unix=unix)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
