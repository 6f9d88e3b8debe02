"""GCRA over several rules at once, in one Redis Lua script (atomic, one round trip).

Each rule is a key holding its theoretical arrival time (TAT, ms on Redis's clock),
an emission interval T (ms per start) and a burst B. A start is admitted at the
first instant every rule allows it: `max(TAT, now) + T - B*T <= instant`. In
`reject` mode that instant must be now; in `defer` mode it may be up to
`max_delay_ms` away and the start is booked there (each rule's TAT moves past it),
so deferred starts are spaced at the rate. A refusal writes nothing: a rule that
would have admitted keeps its token when another refuses.

Redis's own clock (`TIME`) is the only clock, so any number of API processes
(on any hosts) share one limit; scripts replicate by effect, so `TIME` is safe.
The keys of one call must share a hash slot on a Redis Cluster: callers put one
`{tag}` in every key (the tenant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

GCRA_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local defer = ARGV[1] == 'defer'
local max_delay = tonumber(ARGV[2])
local n = #KEYS
local tats = {}
local at = now
local blocking = 0
for i = 1, n do
  local interval = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tats[i] = tat
  local allow_at = tat + interval - burst * interval
  if allow_at > at then
    at = allow_at
    blocking = i
  end
end
local delay = at - now
if delay > 0 and ((not defer) or delay > max_delay) then
  return {0, tostring(delay), 0, tostring(delay), blocking, tostring(now)}
end
local remaining = -1
local reset = 0
local tightest = 1
for i = 1, n do
  local interval = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local tat = math.max(tats[i], at) + interval
  redis.call('SET', KEYS[i], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
  local left = math.floor((now - (tat - burst * interval)) / interval)
  if left < 0 then left = 0 end
  if remaining < 0 or left < remaining then
    remaining = left
    reset = tat - now
    tightest = i
  end
end
return {1, tostring(delay), remaining, tostring(reset), tightest, tostring(now)}
"""


@dataclass(frozen=True, slots=True)
class GcraRule:
    key: str
    interval_ms: float
    burst: int


@dataclass(frozen=True, slots=True)
class GcraDecision:
    admitted: bool
    # Refused: how long until it would be admitted. Admitted: how long the start waits
    # (0 unless deferred).
    delay_ms: float
    # Starts left right now under the tightest rule, and ms until that rule is full again
    # (refused: until it admits).
    remaining: int
    reset_ms: float
    # Index into the rules: the one that refused, or the tightest one that admitted.
    rule: int
    # When Redis decided (its clock, ms since the epoch): every limiter's one clock.
    at_ms: float


class GcraScript:
    """The script, loaded once per client (EVALSHA, with EVAL as redis-py's fallback)."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(GCRA_LUA)

    async def take(
        self,
        rules: list[GcraRule],
        *,
        mode: Literal["reject", "defer"] = "reject",
        max_delay_ms: float = 0.0,
    ) -> GcraDecision:
        if not rules:
            raise ValueError("at least one rule")
        args: list[str | float | int] = [mode, max_delay_ms]
        for rule in rules:
            args.extend((rule.interval_ms, rule.burst))
        reply = await self._script(keys=[rule.key for rule in rules], args=args)
        admitted, delay, remaining, reset, index, at = reply
        return GcraDecision(
            admitted=int(admitted) == 1,
            delay_ms=max(0.0, float(delay)),
            remaining=int(remaining),
            reset_ms=max(0.0, float(reset)),
            rule=max(0, int(index) - 1),
            at_ms=float(at),
        )
