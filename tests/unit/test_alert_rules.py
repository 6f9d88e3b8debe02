"""The alert rules, run by Prometheus's own rule engine: `promtool test rules`.

deploy/prometheus/tests/alerts_test.yml feeds each alert the series that should
fire it; promtool checks the alert fires then (labels and rendered annotations)
and not before its `for:`. promtool comes from Debian's `prometheus` package
(`.ci/run` installs it). Without it these tests skip on a workstation, and fail
where `TASKPLANE_TEST_REQUIRE_PROMTOOL=1` (CI): a skip there would hide them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy_files import ALERTS, alert_rules, load_yaml

RULE_TESTS = ALERTS.parent / "tests"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("TASKPLANE_TEST_REQUIRE_PROMTOOL") == "1":
            pytest.fail("no promtool on PATH, and CI requires the alert rule tests")
        pytest.skip("no promtool on PATH (apt-get install prometheus)")
    return found


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*.yml"))


def test_every_alert_has_a_firing_case() -> None:
    fired = {
        case["alertname"]
        for path in rule_test_files()
        for test in load_yaml(path)["tests"]
        for case in test.get("alert_rule_test", ())
        if case.get("exp_alerts")
    }
    assert fired == {rule["alert"] for rule in alert_rules()}


def test_the_rules_are_valid() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", rule_test_files(), ids=lambda p: p.name)
def test_promtool_rule_tests_pass(path: Path) -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=path.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
