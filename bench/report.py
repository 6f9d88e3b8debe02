"""The bench's outputs: the table it prints, the targets it checks, the latency plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import lifecycle_report, rate_limits
from bench.stats import DISTRIBUTION_PERCENTS

# The targets on this 2-core machine.
MIN_RATIO_TO_BARE = 0.9
MIN_LATENCY_ADVANTAGE = 5.0
MAX_P99_COMMIT_MS = 10.0
MIN_STREAMS = 10_000
MAX_KIB_PER_STREAM = 20.0
MAX_HEALTHZ_MS = 20.0
MAX_FANOUT_CPU_US = 30.0
MAX_FANOUT_LAST_CLIENT_P99_MS = 15.0
MIN_REPLAY_EVENTS_PER_S = 50_000


def _get(report: dict[str, Any], *path: str) -> Any:
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _target(name: str, wanted: str, measured: Any, met: bool | None) -> dict[str, Any]:
    return {"target": name, "wanted": wanted, "measured": measured, "met": met}


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with what this run measured (None: part not run)."""
    found: list[dict[str, Any]] = []
    ratio = _get(report, "throughput", "variants", "taskplane", "median_ratio_to_bare")
    if ratio is not None:
        found.append(
            _target(
                "task throughput with emission / bare Temporal",
                f">= {MIN_RATIO_TO_BARE}",
                ratio,
                ratio >= MIN_RATIO_TO_BARE,
            )
        )
    latency = _get(report, "latency")
    if latency:
        commit = latency["taskplane"]["commit_to_client"]
        p99 = (
            commit["p99_ms"]
            if commit["count"]
            else latency["taskplane"]["record_to_client"]["p99_ms"]
        )
        rate = latency["taskplane"]["events_per_s"]
        found.append(
            _target(
                f"commit-to-client p99 at {rate:.0f} events/s (ms)",
                f"<= {MAX_P99_COMMIT_MS:.0f}",
                p99,
                p99 <= MAX_P99_COMMIT_MS,
            )
        )
        advantage = latency["ratio_p99"]
        found.append(
            _target(
                "Workflow Streams p99 / Taskplane p99",
                f">= {MIN_LATENCY_ADVANTAGE:.0f}",
                advantage,
                advantage is not None and advantage >= MIN_LATENCY_ADVANTAGE,
            )
        )
    capacity = _get(report, "capacity", "capacity")
    if capacity:
        held = capacity["max_streams_held"]
        failed = capacity["steps"][-1]["failed"] if capacity["steps"] else 0
        found.append(
            _target(
                "concurrent SSE streams per API process",
                f">= {MIN_STREAMS}",
                held,
                held >= MIN_STREAMS and failed == 0,
            )
        )
        kib = capacity["kib_per_stream_at_max"]
        found.append(
            _target(
                f"API memory per stream at {held} streams (KiB)",
                f"<= {MAX_KIB_PER_STREAM:.0f}",
                kib,
                kib is not None and kib <= MAX_KIB_PER_STREAM,
            )
        )
        healthz = capacity["healthz_median_ms_at_max"]
        found.append(
            _target(
                f"/healthz median with {held} streams open (ms)",
                f"< {MAX_HEALTHZ_MS:.0f}",
                healthz,
                healthz < MAX_HEALTHZ_MS,
            )
        )
    fanout = _get(report, "capacity", "fanout")
    if fanout:
        clients = fanout["clients"]
        cpu = fanout["api_cpu_us_per_delivery"]
        found.append(
            _target(
                f"one event to {clients} clients: API CPU per delivery (µs)",
                f"<= {MAX_FANOUT_CPU_US:.0f}",
                cpu,
                cpu <= MAX_FANOUT_CPU_US,
            )
        )
        last = fanout.get("p99_last_client_ms")
        found.append(
            _target(
                f"one event to {clients} clients: last client p99 (ms)",
                f"<= {MAX_FANOUT_LAST_CLIENT_P99_MS:.0f}",
                last,
                last is not None and last <= MAX_FANOUT_LAST_CLIENT_P99_MS,
            )
        )
    replay = _get(report, "replay", "sse", "median_events_per_s")
    if replay is not None:
        events = report["replay"]["events"]
        found.append(
            _target(
                f"SSE history replay of {events} events (events/s)",
                f">= {MIN_REPLAY_EVENTS_PER_S}",
                replay,
                replay >= MIN_REPLAY_EVENTS_PER_S,
            )
        )
    return found


def _row(cells: list[Any], widths: list[int]) -> str:
    out = []
    for index, (cell, width) in enumerate(zip(cells, widths, strict=True)):
        text = "-" if cell is None else str(cell)
        out.append(text.ljust(width) if index == 0 else text.rjust(width))
    return "  ".join(out)


def render_table(report: dict[str, Any]) -> str:
    machine = report["machine"]
    load = report["load_average"]
    lines = [
        "",
        f"Taskplane bench ({report['mode']} run, {report['started_at'][:19]}Z, "
        f"{report['wall_seconds']:.0f} s): {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"load {load['start'][0]} -> {load['end'][0]}",
    ]
    throughput = report.get("throughput")
    if throughput:
        rounds = len(throughput["rounds"])
        lines += ["", f"Throughput: demo.pipeline, 5 steps, no sleep (median of {rounds} rounds)"]
        widths = [26, 8, 9, 7, 30]
        lines.append(
            _row(
                ["variant", "tasks/s", "events/s", "x bare", "CPU ms/task bench/temporal/pg"],
                widths,
            )
        )
        for name, v in throughput["variants"].items():
            cpu = v["median_cpu_ms_per_task"]
            cpu_text = "/".join(
                f"{cpu[k]:.0f}" for k in ("bench_process", "temporal", "postgres") if k in cpu
            )
            lines.append(
                _row(
                    [
                        name,
                        v["median_tasks_per_s"],
                        v["median_events_per_s"],
                        v["median_ratio_to_bare"],
                        cpu_text,
                    ],
                    widths,
                )
            )
    latency = report.get("latency")
    if latency:
        lines += [
            "",
            f"Latency at ~{latency['target_rate_events_per_s']:.0f} events/s over "
            f"{latency['tasks']} tasks",
        ]
        widths = [40, 9, 9, 9, 9, 9]
        lines.append(_row(["path", "events/s", "p50 ms", "p95 ms", "p99 ms", "samples"], widths))
        rows = [
            ("Taskplane: recorded -> SSE client", latency["taskplane"], "record_to_client"),
            ("Taskplane: committed -> SSE client", latency["taskplane"], "commit_to_client"),
            ("Taskplane: recorded -> committed", latency["taskplane"], "record_to_commit"),
            (
                "Workflow Streams: published -> client",
                latency["workflow_streams"],
                "publish_to_client",
            ),
        ]
        for label, side, key in rows:
            s = side[key]
            lines.append(
                _row(
                    [
                        label,
                        side["events_per_s"],
                        s["p50_ms"],
                        s["p95_ms"],
                        s["p99_ms"],
                        s["count"],
                    ],
                    widths,
                )
            )
        lines.append(
            f"Workflow Streams / Taskplane: p50 x{latency['ratio_p50']},"
            f" p99 x{latency['ratio_p99']}"
        )
    capacity = _get(report, "capacity", "capacity")
    if capacity:
        lines += ["", "SSE capacity: one API process, idle streams"]
        widths = [10, 12, 12, 8, 10]
        lines.append(_row(["streams", "API RSS MiB", "KiB/stream", "failed", "open s"], widths))
        for step in capacity["steps"]:
            lines.append(
                _row(
                    [
                        step["open_streams"],
                        step["api_rss_mib"],
                        step["kib_per_stream"],
                        step["failed"],
                        step["open_seconds"],
                    ],
                    widths,
                )
            )
        lines.append(
            f"/healthz median with all streams open: {capacity['healthz_median_ms_at_max']} ms"
        )
        floors = capacity.get("floor_kib_per_stream") or {}
        if floors:
            lines.append(
                f"Memory floor per idle stream: bare uvicorn + raw ASGI {floors.get('raw')} KiB,"
                f" + sse-starlette {floors.get('sse_starlette')} KiB"
            )
    fanout = _get(report, "capacity", "fanout")
    if fanout:
        d = fanout["delivery"]
        lines.append(
            f"Fan-out of one event to {fanout['clients']} clients: p50 {d['p50_ms']} ms, "
            f"p99 {d['p99_ms']} ms, last client median {fanout['median_last_client_ms']} ms"
            f" p99 {fanout.get('p99_last_client_ms')} ms, "
            f"{fanout['missing_deliveries']} missing; API CPU "
            f"{fanout['api_cpu_us_per_delivery']} µs per delivery"
        )
    replay = report.get("replay")
    if replay:
        lines += ["", f"History replay of one task with {replay['events']} events (median)"]
        for key, label in (
            ("sse", "SSE from ?after=0"),
            ("history_1000", "/history, limit=1000"),
            ("history_100", "/history, limit=100"),
        ):
            lines.append(f"  {label:<22} {replay[key]['median_events_per_s']:>8} events/s")
    if report.get("lifecycle"):
        lines += lifecycle_report.render(report["lifecycle"])
    if report.get("rate_limits"):
        lines += rate_limits.render(report["rate_limits"])
    if report.get("targets"):
        lines += ["", "Targets"]
        widths = [52, 10, 10, 6]
        lines.append(_row(["target", "wanted", "measured", "met"], widths))
        for t in report["targets"]:
            met = "yes" if t["met"] else "NO"
            lines.append(_row([t["target"], t["wanted"], t["measured"], met], widths))
    return "\n".join(lines)


def write_plot(report: dict[str, Any], path: Path) -> bool:
    """CDFs of the latency distributions; False (and nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[dev]')")
        return False
    latency = report["latency"]
    percents = DISTRIBUTION_PERCENTS
    series = [
        ("Taskplane: recorded → SSE client", latency["taskplane"]["distribution_ms"], "tab:blue"),
        (
            "Taskplane: committed → SSE client",
            latency["taskplane"]["commit_distribution_ms"],
            "tab:cyan",
        ),
        (
            "Workflow Streams: published → subscriber",
            latency["workflow_streams"]["distribution_ms"],
            "tab:red",
        ),
    ]
    figure, (whole, tail) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    for axis, low in ((whole, 0.0), (tail, 90.0)):
        for label, points, colour in series:
            if points:
                axis.plot(points, percents, label=label, color=colour, linewidth=1.8)
        axis.set_xscale("log")
        axis.set_ylim(low, 100.5)
        axis.set_xlabel("latency (ms, log scale)")
        axis.set_ylabel("percentile")
        axis.axhline(99, color="grey", linewidth=0.6, linestyle=":")
        axis.axhline(50, color="grey", linewidth=0.6, linestyle=":")
        axis.grid(True, which="both", linewidth=0.3)
    rate = latency["taskplane"]["events_per_s"]
    whole.set_title(f"Live event latency at ~{rate:.0f} events/s")
    tail.set_title(
        f"The tail: p90-p100 ({report['machine']['cores']} cores, {report['started_at'][:10]})"
    )
    whole.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return True
