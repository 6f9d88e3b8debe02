"""What every part of a bench run shares: the servers, one client of each kind, sizes."""

from __future__ import annotations

import resource
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from bench.procs import tree_cpu_seconds
from bench.stack import Endpoints
from broker.redis import RedisBroker


@dataclass
class Sizes:
    """How much work each part does; `quick()` is the ~1-minute smoke run."""

    throughput_rounds: int = 3
    throughput_variants: str = ""  # comma-separated names; empty: every variant
    throughput_diagnostics: bool = True
    throughput_concurrency: int = 20
    throughput_warmup_seconds: float = 2.0
    throughput_window_seconds: float = 6.0
    latency_rounds: int = 2
    latency_tasks: int = 8
    latency_rate: float = 200.0  # events/s over all tasks
    latency_seconds: float = 15.0
    capacity_steps: tuple[int, ...] = (2000, 4000, 6000, 8000, 10_000)
    capacity_topics: int = 100
    capacity_floor_streams: int = 2000
    fanout_clients: int = 200
    fanout_events: int = 40
    fanout_interval_seconds: float = 0.25
    replay_events: int = 10_000
    replay_repeats: int = 5
    lever_events: int = 500
    lever_rounds: int = 5
    # Daily partitions of `events` the levers part makes ahead before it records (0: the
    # fresh database's own). ~33 is a month's retention at the defaults: what a store in
    # steady state holds. They stay for the rest of the run.
    lever_partitions_ahead: int = 0
    output_rounds: int = 2
    output_tasks: int = 8
    output_tokens: int = 400
    output_token_seconds: float = 0.02  # 50 tokens/s per task
    output_streams: bool = True  # the same output on Temporal Workflow Streams too
    output_streams_batch_ms: int = 40  # their batch interval (our window); 0: per token
    output_flushes: int = 400  # recording a flush, one transaction vs one per event (ABAB)
    lifecycle_tasks: int = 500  # a round, each variant
    lifecycle_rounds: int = 3  # of the plain variant (the other runs one)
    lifecycle_steps: int = 3  # demo.pipeline steps: 2 + 2 x steps events a task
    lifecycle_concurrency: int = 10
    rate_window_seconds: float = 60.0
    rate_per_second: int = 50
    rate_burst: int = 10
    rate_offered: float = 150.0  # asks/s over all drivers
    rate_overhead_calls: int = 2000
    rate_overhead_rounds: int = 3
    debounce_creations: int = 200
    debounce_concurrency: int = 5
    debounce_period_seconds: float = 2.0
    flow_noisy: int = 2000  # the noisy tenant's burst (bench/flow.py)
    flow_quiet: int = 20
    # Between one quiet answer and the next quiet `POST` (the API variants): ~4 tasks a
    # second. At 0.05 (until session 17) the "quiet" tenant sent ~16 a second, more than
    # the noisy tenant's limit admits, and alone kept two cores 54-63 % busy
    # (`busy_while_quiet`): its idle baseline was no idle system (docs/performance.md).
    flow_quiet_gap_seconds: float = 0.25
    flow_step_seconds: float = 0.05
    # The quiet tenant's step; < 0: `flow_step_seconds` (noisy long tasks, quiet short ones).
    flow_quiet_step_seconds: float = -1.0
    flow_limit: int = 10  # per tenant key in the `fairness_limit` variant
    flow_variants: str = ""  # comma-separated (bench/flow.py); empty: every variant
    flow_worker_slots: int = 10  # the `*_slots` variants' worker task slots (SDK default 100)
    flow_deadline_seconds: float = 300.0  # per variant; quiet tasks not started then count
    flow_overhead_tasks: int = 100
    flow_overhead_concurrency: int = 5
    flow_overhead_rounds: int = 2
    flow_claims: int = 500
    # Lines parked into from empty (bench/park_cost.py), comma-separated; empty: none.
    flow_park_lines: str = "200,2000"

    @property
    def quiet_step_seconds(self) -> float:
        """The quiet tenant's step length in the flow part."""
        if self.flow_quiet_step_seconds < 0:
            return self.flow_step_seconds
        return self.flow_quiet_step_seconds

    def override(self, assignments: list[str]) -> Sizes:
        """`name=value` strings (from `--set`); tuples as comma-separated integers."""
        for assignment in assignments:
            name, _, raw = assignment.partition("=")
            current = getattr(self, name)  # AttributeError names an unknown size
            value: object
            if isinstance(current, tuple):
                value = tuple(int(part) for part in raw.split(","))
            elif isinstance(current, bool):
                value = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                value = type(current)(raw)
            setattr(self, name, value)
        return self

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            throughput_rounds=1,
            throughput_diagnostics=False,
            throughput_concurrency=10,
            throughput_warmup_seconds=1.0,
            throughput_window_seconds=2.0,
            latency_rounds=1,
            latency_tasks=4,
            latency_rate=100.0,
            latency_seconds=4.0,
            capacity_steps=(250, 500),
            capacity_topics=25,
            capacity_floor_streams=500,
            fanout_clients=200,
            fanout_events=10,
            replay_events=2000,
            replay_repeats=2,
            lever_events=100,
            lever_rounds=1,
            output_rounds=1,
            output_tasks=4,
            output_tokens=100,
            output_flushes=40,
            lifecycle_tasks=100,
            lifecycle_rounds=2,
            rate_window_seconds=10.0,
            rate_overhead_calls=500,
            rate_overhead_rounds=1,
            debounce_creations=50,
            flow_noisy=200,
            flow_quiet=10,
            flow_deadline_seconds=180.0,
            flow_overhead_tasks=20,
            flow_overhead_rounds=1,
            flow_claims=100,
            flow_park_lines="100,500",
        )


@dataclass
class BenchContext:
    endpoints: Endpoints
    client: Client
    pool: AsyncConnectionPool
    broker: RedisBroker
    log_dir: Path
    sizes: Sizes
    # name → pid of the servers the bench started (empty for servers it was given).
    server_pids: dict[str, int] = field(default_factory=dict)

    def cpu_snapshot(self) -> dict[str, float]:
        """CPU seconds so far: this process (the in-process worker and driver) and each server."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        snapshot = {"bench_process": usage.ru_utime + usage.ru_stime}
        for name, pid in self.server_pids.items():
            snapshot[name] = tree_cpu_seconds(pid)
        return snapshot


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before if name in after}


async def cost_per(
    ctx: BenchContext, work: Awaitable[object], count: int, unit: str
) -> dict[str, float]:
    """Wall time, this process's CPU and Postgres's CPU (NaN where the bench does not run
    it) per `unit`, `work` being `count` of them, in µs."""
    before, cpu, began = ctx.cpu_snapshot(), time.process_time(), time.perf_counter()
    await work
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    postgres = cpu_delta(before, ctx.cpu_snapshot()).get("postgres", float("nan"))
    return {
        f"wall_us_per_{unit}": round(wall / count * 1e6, 1),
        f"client_cpu_us_per_{unit}": round(cpu / count * 1e6, 1),
        f"postgres_cpu_us_per_{unit}": round(postgres / count * 1e6, 1),
    }
