"""The deployment files (docker-compose.yml, Dockerfile, deploy/), read as tests need them.

No Docker engine runs the stack in this repository's CI, so the tests check
what can be checked without one: the files parse, refer to each other and to
real commands, settings and ports, and every query in the alert rules and the
dashboard parses as PromQL and names metrics our processes export.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
OPERATIONS = ROOT / "docs" / "operations.md"

# Metrics Prometheus makes itself for every target.
PROMETHEUS_OWN = frozenset({"up"})
# Exported by workers whose Redis reports them (XINFO GROUPS `lag`: Redis >= 7).
ONLY_ON_REDIS_7 = frozenset({"taskplane_durable_group_lag"})


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE)
    return loaded


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))]


@dataclass(frozen=True)
class Query:
    where: str
    expr: str


def queries() -> Iterator[Query]:
    """Every PromQL expression of the alert rules and the dashboards."""
    for rule in alert_rules():
        yield Query(f"alert {rule['alert']}", rule["expr"])
    for board in dashboards():
        for panel in board["panels"]:
            for target in panel.get("targets", ()):
                yield Query(f"dashboard {board['uid']} panel {panel['title']!r}", target["expr"])


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (parsing it: a syntax error raises)."""
    names: set[str] = set()

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def referenced_metrics() -> dict[str, set[str]]:
    """Metric name → where it is used."""
    used: dict[str, set[str]] = {}
    for query in queries():
        for name in metric_names(query.expr):
            used.setdefault(name, set()).add(query.where)
    return used


def exported_names(prometheus_text: str) -> set[str]:
    """Sample names in a Prometheus text exposition (`_bucket`, `_total`, … included),
    and those of families declared (`# TYPE`) with no sample yet: a labelled counter
    such as `taskplane_errors_total` has none until its first error."""
    names: set[str] = set()
    for line in prometheus_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            suffixes = ("_bucket", "_count", "_sum") if kind == "histogram" else ("",)
            names.update(family + suffix for suffix in suffixes)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            anchors.add(slug)
    return anchors
