"""The lifecycle part's lines in the bench's table (bench/lifecycle.py)."""

from __future__ import annotations

from typing import Any


def render(lifecycle: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"Lifecycle: bytes per task by table ({lifecycle['events_per_task']} events a task;"
        " first round)",
    ]
    variants = lifecycle["variants"]
    tables = sorted({table for v in variants.values() for table in v["per_task"]})
    names = list(variants)
    lines.append(f"{'table':<22}" + "".join(f"{name:>18}" for name in names))
    for table in tables:
        cells = []
        for name in names:
            found = variants[name]["per_task"].get(table)
            cells.append(
                f"{found['total_bytes']:>9.0f} B {found['rows']:>4.1f} r" if found else "-"
            )
        lines.append(f"{table:<22}" + "".join(f"{cell:>18}" for cell in cells))
    lines.append(
        f"{'all tables':<22}"
        + "".join(f"{variants[name]['per_task_total_bytes']:>16.0f} B" for name in names)
    )
    lines.append("Database size by round (MiB): after tasks / after pruning / after VACUUM")
    for name in names:
        sizes = [
            "/".join(
                f"{r['database_bytes'][k] / 2**20:.1f}"
                for k in ("after_tasks", "after_prune", "after_vacuum")
            )
            for r in variants[name]["rounds"]
        ]
        lines.append(f"  {name:<20} " + "  ".join(sizes))
    return lines
