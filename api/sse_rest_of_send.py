"""The rest of an ASGI `send` that the fan-out started for a parked stream.

`SseClient.take` (api/sse_client.py) drives the server's `send` coroutine by hand from
the broker's dispatch; nearly always it completes at once. When the transport is paused
(the client's socket buffer is full) the coroutine waits on a future, and what is left
of it is awaited by the stream's own task, under the stream's send timeout.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any


class RestOfSend:
    """The rest of a `send` coroutine that the fan-out started and that had to wait:
    awaited by the stream's task, which waits on what the coroutine waits on (the same
    future) and passes a cancellation (a send timeout, shutdown) into it."""

    __slots__ = ("_sending", "_waiting")

    def __init__(self, sending: Coroutine[Any, Any, None], waiting: Any) -> None:
        self._sending = sending
        self._waiting = waiting

    def __await__(self) -> Generator[Any, None, None]:
        sending, waiting = self._sending, self._waiting
        while True:
            try:
                yield waiting
            except GeneratorExit:
                sending.close()
                raise
            except BaseException as exc:  # noqa: BLE001 -- passed into the send, which raises it
                try:
                    waiting = sending.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = sending.send(None)
                except StopIteration:
                    return

    def close(self) -> None:
        self._sending.close()
