"""Serving an SSE stream in front of the app's middlewares (api/sse_response.py).

A stream lives for minutes, and every frame above it lives as long: FastAPI's
(routing, dependency solving, its exit stacks, the `Request`), Starlette's and
the app's own middlewares (request id and log context, auth, CORS, body limit,
exception handling) — ~15 KiB per idle stream, and six `send` wrappers that
every delivery crossed (docs/performance.md, "API side of issue 15").

`StreamHandoffApp` is the OUTERMOST ASGI app: the app itself (`api.app.TaskplaneApp`
is FastAPI with it), in front of Starlette's own middlewares too. It offers every HTTP request a
`Handoff` in its scope. The request goes through the whole stack as any other:
authentication, stream tokens, tenancy, limits, routing, the route's checks; a
refusal (401, 404, 429, 503 ...) is answered there, by whoever refuses. A
`TaskEventResponse` that is admitted sends its response start through that
stack too (every middleware adds its headers: `X-Request-ID`, CORS), then hands
the stream (`Handoff.hand`) and returns, so all those frames unwind. The stream
is then served there, with the server's own `receive` and `send`:

- in the context the route saw (its log fields: `request_id`, `task_id`,
  `tenant`; the current span), restored from a copy taken at the handoff;
- and a middleware that has something to do when the request ends (the access
  log line, the request histogram, the SERVER span) registers it with
  `Handoff.on_finish` instead of doing it when the app returns: it runs when
  the stream ends, with the exception the stream ended on, if any.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

HANDOFF = "taskplane.stream_handoff"

Finisher = Callable[[BaseException | None], None]
_UNSET = object()
DROPPED_SCOPE_KEYS = ("fastapi", "path_params", "starlette.exception_handlers")


class Handoff:
    """One request's offer to serve its stream in front of the middlewares."""

    __slots__ = ("_abandon", "_context", "_finishers", "_serve", "_tokens", "receive", "send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive = receive  # the server's own: no middleware's wrapper
        self.send = send
        self._serve: Callable[[], Awaitable[None]] | None = None
        self._abandon: Callable[[], None] | None = None
        self._context: contextvars.Context | None = None
        self._finishers: list[Finisher] = []
        self._tokens: list[contextvars.Token[object]] = []

    @property
    def taken(self) -> bool:
        """A stream was handed: the request is not over when the app returns."""
        return self._serve is not None

    def hand(self, serve: Callable[[], Awaitable[None]], abandon: Callable[[], None]) -> None:
        """Serve `serve()` once the app has returned; `abandon()` if that never happens."""
        self._serve = serve
        self._abandon = abandon
        self._context = contextvars.copy_context()

    def on_finish(self, finish: Finisher) -> None:
        self._finishers.append(finish)

    def take(self) -> Callable[[], Awaitable[None]] | None:
        """What to serve now (None: nothing was handed), in the route's context again."""
        serve, context = self._serve, self._context
        self._serve = self._abandon = self._context = None
        if context is not None:
            for var, value in context.items():
                if var.get(_UNSET) is not value:
                    self._tokens.append(var.set(value))
        return serve

    def abandon(self, error: BaseException | None) -> None:
        """The app failed after the stream was handed: it is never served."""
        abandon = self._abandon
        self._serve = self._abandon = self._context = None
        if abandon is not None:
            abandon()
        self.finish(error)

    def finish(self, error: BaseException | None) -> None:
        """The request ends: its middlewares' finishers, then the context as it was."""
        finishers, self._finishers = self._finishers, []
        try:
            for finish in reversed(finishers):  # the innermost middleware's first
                finish(error)
        finally:
            tokens, self._tokens = self._tokens, []
            for token in reversed(tokens):
                token.var.reset(token)


class StreamHandoffApp(Starlette):
    """Mixed in before FastAPI: each request, then the stream it handed, if any."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        handoff = Handoff(receive, send)
        scope[HANDOFF] = handoff
        try:
            await super().__call__(scope, receive, send)
        except BaseException as exc:
            handoff.abandon(exc)
            raise
        serve = handoff.take()
        if serve is None:
            return
        # FastAPI's request state (its exit stacks, closed by now) and the parsed path
        # would stay with the scope for the stream's life: only the framework reads them.
        for key in [key for key in scope if key.startswith(DROPPED_SCOPE_KEYS)]:
            del scope[key]
        error: BaseException | None = None
        try:
            await serve()
        except BaseException as exc:
            error = exc
            raise
        finally:
            handoff.finish(error)
