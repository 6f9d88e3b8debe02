"""Worker Versioning settings: off changes nothing; on, workers pin by default and the
listed short types start auto-upgraded."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.common import (
    AutoUpgradeVersioningOverride,
    VersioningBehavior,
    WorkerDeploymentVersion,
)

from settings.config import ConfigurationError
from settings.deployment import DeploymentSettings


def test_off_by_default_gives_an_unversioned_worker_and_no_override() -> None:
    off = DeploymentSettings()
    assert off.versioning is False
    assert off.deployment_config() is None
    assert off.start_override("demo.pipeline") is None
    assert off.start_override("demo.approval") is None


def test_on_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKPLANE_WORKER_VERSIONING", "on")
    monkeypatch.setenv("TASKPLANE_WORKER_DEPLOYMENT_NAME", "shop")
    monkeypatch.setenv("TASKPLANE_WORKER_BUILD_ID", "sha-1a2b")
    monkeypatch.setenv("TASKPLANE_WORKER_AUTO_UPGRADE_TYPES", " report.quick , demo.fanout ")
    on = DeploymentSettings()
    config = on.deployment_config()
    assert config is not None
    assert config.version == WorkerDeploymentVersion("shop", "sha-1a2b")
    assert config.use_worker_versioning is True
    assert config.default_versioning_behavior is VersioningBehavior.PINNED
    assert on.auto_upgrade() == {"report.quick", "demo.fanout"}
    assert isinstance(on.start_override("report.quick"), AutoUpgradeVersioningOverride)
    assert on.start_override("demo.approval") is None  # pinned: the worker's default


def test_on_without_a_build_id_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="TASKPLANE_WORKER_BUILD_ID"):
        DeploymentSettings(versioning=True).deployment_config()


@pytest.mark.parametrize("field", ["deployment_name", "build_id"])
def test_a_dot_in_a_name_is_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="must not contain"):
        DeploymentSettings.model_validate({field: "v1.2"})
