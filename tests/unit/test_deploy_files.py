"""docker-compose.yml, the Dockerfile and deploy/: consistent with each other and the code.

What is NOT checked here (no Docker engine on this machine or in CI): that the
images build, that the containers start, that Prometheus loads the rules and
Grafana the dashboard. Each file is checked for what can be known without
running it; tests/e2e/test_observability_deploy.py then compares every metric
name used here with what a running API and worker export.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cli.main import build_parser
from settings import Settings
from tests.deploy_files import (
    ALERTS,
    COMPOSE,
    DASHBOARDS,
    DOCKERFILE,
    GRAFANA,
    OPERATIONS,
    PROMETHEUS,
    ROOT,
    alert_rules,
    compose,
    dashboards,
    github_anchors,
    load_yaml,
    metric_names,
    queries,
)

TASKPLANE_SERVICES = ("migrate", "api", "worker")


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def test_compose_has_the_whole_stack() -> None:
    assert set(services()) >= {
        "temporal",
        "temporal-postgres",
        "temporal-ui",
        "postgres",
        "redis",
        "migrate",
        "api",
        "worker",
        "prometheus",
        "grafana",
    }
    assert services()["worker"]["deploy"]["replicas"] >= 2
    assert services()["temporal"]["image"].startswith("temporalio/auto-setup")


def test_compose_commands_are_real_cli_commands() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in TASKPLANE_SERVICES:
        program, command = services()[name]["command"]
        assert program in scripts, name
        assert build_parser().parse_args([command]).command == command  # exits when unknown
        if command in {"api", "worker"}:  # `taskplane api` = `python -m api`
            assert importlib.util.find_spec(f"{command}.__main__") is not None
    assert services()["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        depends = services()[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_compose_settings_are_settings_and_reach_the_right_services() -> None:
    fields = {f"TASKPLANE_{name.upper()}" for name in Settings.model_fields}
    for name in TASKPLANE_SERVICES:
        env = services()[name]["environment"]
        assert set(env) <= fields, set(env) - fields
        assert env["TASKPLANE_DATABASE_URL"].split("@")[1].startswith("postgres:")
        assert env["TASKPLANE_REDIS_URL"].startswith("redis://redis:")
        assert env["TASKPLANE_TEMPORAL_ADDRESS"] == "temporal:7233"
    for name, service in services().items():
        for dependency in service.get("depends_on", ()):
            assert dependency in services(), (name, dependency)


def test_mounted_files_exist() -> None:
    for service in services().values():
        for volume in service.get("volumes", ()):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume


def test_the_dockerfile_runs_the_cli_and_exposes_the_default_ports() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r'^CMD \["taskplane", "api"\]$', text, re.MULTILINE)
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.MULTILINE)
               for p in line.split()}  # fmt: skip
    defaults = Settings()
    assert exposed == {
        defaults.api_port,
        defaults.worker_metrics_port,
        defaults.worker_metrics_temporal_port,
    }
    assert "TASKPLANE_WORKER_METRICS_HOST=0.0.0.0" in text


def test_prometheus_scrapes_every_api_and_worker_replica_on_their_ports() -> None:
    config = load_yaml(PROMETHEUS)
    assert [Path(f).name for f in config["rule_files"]] == [ALERTS.name]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker_env = services()["worker"]["environment"]
    expected = {
        "taskplane-api": ("api", Settings().api_port),
        "taskplane-worker": ("worker", int(worker_env["TASKPLANE_WORKER_METRICS_PORT"])),
        "temporal-sdk": ("worker", int(worker_env["TASKPLANE_WORKER_METRICS_TEMPORAL_PORT"])),
    }
    for job, (service, port) in expected.items():
        (discovery,) = jobs[job]["dns_sd_configs"]  # every replica, by DNS
        assert discovery["names"] == [service]
        assert discovery["port"] == port
    mounts = {v.split(":")[1] for v in services()["prometheus"]["volumes"]}
    assert set(config["rule_files"]) <= mounts


def test_alert_rules_are_complete_and_have_a_runbook() -> None:
    anchors = github_anchors(OPERATIONS.read_text())
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md"
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor}"


def test_the_hot_paths_are_alerted_on() -> None:
    watched = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    assert watched >= {
        "taskplane_outbox_oldest_pending_seconds",
        "taskplane_broker_dropped_total",
        "taskplane_sse_heals_total",
        "taskplane_durable_dead_lettered_total",
        "taskplane_event_publish_seconds_bucket",
        "up",
    }


# Every lag figure (issue 16): each has an alert and a dashboard panel.
LAG_FIGURES = frozenset(
    {
        "taskplane_durable_group_lag_seconds",
        "taskplane_durable_group_lag",
        "taskplane_durable_stream_length",
        "taskplane_durable_group_pending",
        "taskplane_durable_group_behind_trim",
        "taskplane_durable_unhealed_gaps_total",
        "taskplane_webhook_oldest_pending_seconds",
        "taskplane_sse_stream_errors_total",
        "taskplane_errors_total",
    }
)


def test_every_lag_figure_is_alerted_on_and_charted() -> None:
    alerted = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    charted = {
        name
        for query in queries()
        if query.where.startswith("dashboard")
        for name in metric_names(query.expr)
    }
    assert alerted >= LAG_FIGURES, LAG_FIGURES - alerted
    assert charted >= LAG_FIGURES, LAG_FIGURES - charted


@pytest.mark.parametrize("query", list(queries()), ids=lambda q: q.where)
def test_every_query_parses(query: Any) -> None:
    assert metric_names(query.expr)


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    (datasource,) = load_yaml(GRAFANA / "provisioning/datasources/prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(GRAFANA / "provisioning/dashboards/taskplane.yml")["providers"]
    mounts = dict(v.split(":")[:2] for v in services()["grafana"]["volumes"] if v.startswith("./"))
    assert Path(mounts["./deploy/grafana/dashboards"]) == Path(provider["options"]["path"])
    assert (ROOT / "deploy/grafana/provisioning").exists()
    boards = dashboards()
    assert [b["uid"] for b in boards] == ["taskplane"]
    for panel in boards[0]["panels"]:
        for target in panel.get("targets", ()):
            assert target["datasource"]["uid"] == datasource["uid"], panel["title"]
    assert len(list(DASHBOARDS.glob("*.json"))) == 1
    assert COMPOSE.exists()


def test_dashboard_panels_do_not_overlap() -> None:
    (board,) = dashboards()
    taken: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, (panel["title"], taken.get((x, y)))
                taken[(x, y)] = panel["title"]
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
