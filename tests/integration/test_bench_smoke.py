"""The bench must not rot: a seconds-long slice of two of its parts on the session's servers.

No timing is asserted, only that each part runs end to end and produces
sane (positive, complete) figures. The full bench is `make bench`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from bench import flow, levers, output, rate_limits, replay, throughput
from bench.context import BenchContext, Sizes
from bench.event_floor import FloorRecorder
from bench.publish_cost import KINDS, publish_cost
from bench.report import targets
from bench.stack import Endpoints
from broker import topic_for
from broker.redis import RedisBroker
from settings import Settings
from store import open_pool
from temporal.client import connect_client

pytestmark = pytest.mark.bench


@pytest.fixture
async def ctx(
    database_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> AsyncIterator[BenchContext]:
    endpoints = Endpoints(database_url, redis_url, temporal_address)
    pool = await open_pool(database_url, min_size=1, max_size=8)
    broker = RedisBroker(redis_url)
    await broker.connect()
    client = await connect_client(
        Settings(database_url=database_url, redis_url=redis_url, temporal_address=temporal_address)
    )
    sizes = Sizes.quick().override(
        [
            "throughput_variants=taskplane,taskplane_worker_loops,taskplane_floor",
            "throughput_concurrency=4",
            "throughput_warmup_seconds=0.5",
            "throughput_window_seconds=2",
            "replay_events=300",
            "replay_repeats=1",
        ]
    )
    yield BenchContext(endpoints, client, pool, broker, tmp_path, sizes)
    await broker.close()
    await pool.close()


async def test_throughput_slice_measures_both_variants_and_their_ratio(
    ctx: BenchContext,
) -> None:
    result = await throughput.run(ctx)

    variants = result["variants"]
    assert set(variants) == {
        "bare_temporal",
        "taskplane",
        "taskplane_worker_loops",
        "taskplane_floor",
    }
    assert variants["bare_temporal"]["median_tasks_per_s"] > 0
    assert variants["taskplane"]["median_tasks_per_s"] > 0
    # Every completed demo.pipeline of 5 steps recorded its 12 events.
    assert variants["taskplane"]["events_per_task"] == 12
    assert variants["taskplane"]["median_ratio_to_bare"] > 0
    # The same tasks run by the production WorkerRuntime, its loops beside them.
    assert variants["taskplane_worker_loops"]["events_per_task"] == 12
    # The same tasks with each event at the contract's floor: all 12 written too.
    assert variants["taskplane_floor"]["events_per_task"] == 12
    (target,) = targets({"throughput": result})
    assert target["measured"] == variants["taskplane"]["median_ratio_to_bare"]


async def test_floor_recorder_writes_numbered_events_and_publishes_them(
    ctx: BenchContext,
) -> None:
    task_id = str(uuid.uuid4())
    recorder = FloorRecorder(ctx.pool, ctx.endpoints.redis_url, stream_key=ctx.broker.stream_key)
    async with ctx.broker.subscribe(topic_for(task_id)) as live:
        sequences = [
            (
                await recorder.record(
                    event_id=str(uuid.uuid4()),
                    task_id=task_id,
                    event_type="task.step.progress.v1",
                    data={"index": 1, "name": "step-1", "percent": percent, "total_steps": 1},
                )
            ).sequence
            for percent in (10, 20, 30)
        ]
        heard = []
        for _ in sequences:
            delivery = await live.get(timeout=5)
            assert delivery is not None
            assert delivery.payload is not None
            heard.append(orjson.loads(delivery.payload)["sequence"])
    await recorder.close()

    assert sequences == heard == [1, 2, 3]
    async with ctx.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*)"
            " FROM outbox WHERE task_id = %s",
            (task_id,),
        )
        assert await cursor.fetchone() == (0, 3)  # close() marked them: no relay resends


async def test_levers_record_at_the_floor_beside_production(ctx: BenchContext) -> None:
    for kind in ("production", "floor"):
        result = await levers.record_events(ctx, kind, 20)
        assert result["cpu_ms"] > 0, kind


async def test_publish_cost_measures_every_way_of_publishing(ctx: BenchContext) -> None:
    result = await publish_cost(ctx)

    assert result["publishes_per_run"] == 4 * ctx.sizes.lever_events
    for kind in KINDS:
        assert result[f"{kind}_cpu_us"] > 0, kind


async def test_replay_slice_reads_every_event_over_sse_and_history(ctx: BenchContext) -> None:
    result = await replay.run(ctx)

    for way in ("sse", "history_1000", "history_100"):
        assert result[way]["events_read"] == [300], way
        assert result[way]["median_events_per_s"] > 0


async def test_output_slice_counts_every_token_of_every_chat(ctx: BenchContext) -> None:
    ctx.sizes.override(["output_tasks=2", "output_tokens=30", "output_token_seconds=0.01"])
    result = await output.run(ctx)

    (only,) = result["rounds"]
    assert only["tokens_live"] + only["tokens_as_history"] == 2 * 30
    assert only["output_events"] > 0
    assert result["write_to_client"]["count"] == only["tokens_live"]
    assert result["write_to_record"]["count"] == only["tokens_live"]
    assert only["history_events_per_task"] > 0
    flushes = result["flush_cost"]
    assert flushes["one_transaction"]["count"] == flushes["one_per_event"]["count"] == 20
    # The same output on Temporal Workflow Streams, in the same run: every token counted,
    # carried by signals that each left events in the workflow's history.
    (streamed,) = result["workflow_streams"]["rounds"]
    assert streamed["tokens_live"] + streamed["tokens_as_history"] == 2 * 30
    assert streamed["signals"] > 0
    assert streamed["history_events_per_task"] > streamed["signals"] / 2
    assert result["workflow_streams"]["write_to_client"]["count"] == streamed["tokens_live"]
    table = "\n".join(output.render(result))
    assert "chunks/s" in table
    assert "Workflow Streams" in table
    assert "Taskplane (SSE)" in table


async def test_rate_limit_slice_stays_under_its_bound(ctx: BenchContext) -> None:
    ctx.sizes.override(
        [
            "rate_window_seconds=2",
            "rate_overhead_calls=50",
            "debounce_creations=10",
            "debounce_period_seconds=5",
        ]
    )
    measured = await rate_limits.run(ctx)
    accuracy = measured["accuracy"]
    assert 0 < accuracy["admitted"] <= accuracy["bound"]
    assert set(measured["overhead"]) == {
        "no limit",
        "tenant rule",
        "tenant+key+type (6 keys)",
        "redis PING",
    }
    # Ten creations of one key, five at a time: one task, and the window counted all.
    assert measured["debounce"]["tasks"] == 1
    assert measured["debounce"]["collapsed"] == 10
    assert rate_limits.render(measured)[1].startswith("Rate limits: 2 limiters")


async def test_flow_slice_starts_every_quiet_task_and_never_overfills_a_key(
    ctx: BenchContext,
) -> None:
    ctx.sizes.override(
        [
            "flow_noisy=16",
            "flow_quiet=3",
            "flow_limit=2",
            "flow_step_seconds=0",
            "flow_overhead_tasks=4",
            "flow_overhead_rounds=1",
            "flow_claims=10",
            "flow_park_lines=20,40",
            "flow_variants=no_fairness,fairness_limit,api_fairness_limit_slots,"
            "api_held_outside_limit,api_parked_limit_slots_default_rate",
        ]
    )
    result = await flow.run(ctx)

    assert result["claims"]["pairs"] == 10
    assert [line["parks"] for line in result["parks"]["lines"]] == [20, 40]
    assert all(line["client_cpu_us_per_park"] > 0 for line in result["parks"]["lines"])
    async with ctx.pool.connection() as conn:  # the lines leave nothing for a worker's keeper
        cursor = await conn.execute(
            "SELECT count(*) FROM admission_keys WHERE concurrency_key LIKE 'parks-%'"
        )
        assert await cursor.fetchone() == (0,)
    assert set(result["overhead"]) >= {"no_limit", "limit"}
    fairness = result["fairness"]
    in_process = {"idle", "no_fairness", "fairness_limit"}
    # The deployment topology: a worker and an API process, both tenants through POST /tasks.
    api = {
        "api_idle",
        "api_fairness_limit_slots",
        "api_held_outside_limit",
        "api_parked_limit_slots_default_rate",
    }
    assert set(fairness) == in_process | api
    for name, figures in fairness.items():
        assert figures["quiet_started"] == figures["quiet_sent"] == 3, name
        if name != "api_held_outside_limit":  # its closed loop stops once the quiet are in
            assert figures["noisy_sent"] == (0 if name.endswith("idle") else 16), name
    for name in api:  # how busy the cores were while the quiet tenant's tasks went through
        assert 0 < fairness[name]["busy_while_quiet"] <= 1, name
    # As shipped, 16 creations are within a tenant's burst: nothing to wait out.
    assert fairness["api_parked_limit_slots_default_rate"]["noisy_refused"] == 0
    for name in ("fairness_limit", "api_fairness_limit_slots", "api_held_outside_limit"):
        assert fairness[name]["key_samples"] >= 1, name
        assert fairness[name]["most_held_per_key"] <= 2, name
    assert fairness["api_held_outside_limit"]["noisy_started_by_then"] >= 1
    assert fairness["api_fairness_limit_slots"]["slowest_quiet_history_ms"]
    segments = fairness["api_fairness_limit_slots"]["quiet_segments_ms"]
    assert {"post", "poll", "first_workflow_task", "step_event", "total"} <= set(segments)
    assert all(0 <= span["p50"] <= span["max"] for span in segments.values())
    assert segments["total"]["max"] >= segments["first_workflow_task"]["max"]
    assert "flow control" in "\n".join(flow.render(result))
