"""One publish, one command: PUBLISH to the live topic and XADD to the durable stream
in a server-side script.

The same two commands in a redis-py pipeline cost the publishing thread more CPU (two
replies to parse and the pipeline's own bookkeeping: 11 to 31 µs a publish here, measured
by `python -m bench --parts levers`, docs/performance.md "Session 11: one command a
publish"; Redis's own CPU the same). The script is loaded
once per server: redis-py's `AsyncScript` sends EVALSHA and, when the server does not
know the script (a restart, SCRIPT FLUSH), loads it and tries again.

What it writes is what the pipeline wrote: per message, in order, PUBLISH then XADD
with `MAXLEN ~`. An error part-way (PUBLISH done, XADD refused) fails the call as the
pipeline did, and the recorder hands the events to the outbox relay, which publishes
them again (consumers deduplicate by event id).

A server that will not run scripts (an ACL user without EVALSHA, a renamed command)
gets the pipeline instead, from the first refusal on: publishing must not depend on it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoPermissionError, ResponseError

log = logging.getLogger(__name__)

# KEYS[1]: the stream. ARGV[1]: its approximate MAXLEN; then topic, payload pairs.
# Topics are pub/sub channels, not keys, so they go in ARGV.
_PUBLISH_AND_APPEND = """
local stream, maxlen = KEYS[1], ARGV[1]
for i = 2, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'topic', ARGV[i], 'payload', ARGV[i + 1])
end
return (#ARGV - 1) / 2
"""


def _scripts_refused(exc: ResponseError) -> bool:
    """The server will not run scripts for us (not: this script failed, or a key is
    off limits): NOPERM or an unknown command, naming EVALSHA or SCRIPT."""
    message = str(exc).lower()
    names_scripting = "evalsha" in message or "'script" in message
    refused = isinstance(exc, NoPermissionError) or "unknown command" in message
    return refused and names_scripting


async def publish_in_pipeline(
    client: Redis, messages: Sequence[tuple[str, str]], *, stream_key: str, stream_maxlen: int
) -> None:
    """The same writes as the script, as two commands a message in one non-transactional
    pipeline: the fallback, and the bench's baseline (bench/publish_cost.py)."""
    async with client.pipeline(transaction=False) as pipe:
        for topic, payload in messages:
            pipe.publish(topic, payload)
            pipe.xadd(
                stream_key,
                {"topic": topic, "payload": payload},
                maxlen=stream_maxlen,
                approximate=True,
            )
        await pipe.execute()


class PublishScript:
    """PUBLISH + XADD for a batch of (topic, payload): one EVALSHA, or a pipeline where
    scripts are refused."""

    def __init__(self, client: Redis, *, stream_key: str, stream_maxlen: int) -> None:
        self._client = client
        self._script: AsyncScript = client.register_script(_PUBLISH_AND_APPEND)
        self._stream_key = stream_key
        self._maxlen = stream_maxlen
        self._use_pipeline = False

    async def __call__(self, messages: Sequence[tuple[str, str]]) -> None:
        if not self._use_pipeline:
            args: list[str | int] = [self._maxlen]
            for topic, payload in messages:
                args.append(topic)
                args.append(payload)
            try:
                await self._script(keys=(self._stream_key,), args=args)
                return
            except ResponseError as exc:
                if not _scripts_refused(exc):
                    raise
                self._use_pipeline = True
                log.warning(
                    "Redis refuses scripts; publishing with a pipeline from now on",
                    extra={"error": str(exc)},
                )
        await publish_in_pipeline(
            self._client, messages, stream_key=self._stream_key, stream_maxlen=self._maxlen
        )
