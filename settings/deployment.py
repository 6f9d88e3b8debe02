"""Worker Versioning: which Worker Deployment version a worker is, and how tasks move.

Off by default (`TASKPLANE_WORKER_VERSIONING=off`): workers are unversioned and
nothing about starting or replaying tasks changes. On, every worker polls as
version `<deployment_name>.<build_id>`; a task type is either pinned (it runs to
its end on the version that started it) or auto-upgraded (its next workflow
task runs on the deployment's current version). See docs/deploys.md.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.common import (
    AutoUpgradeVersioningOverride,
    VersioningBehavior,
    VersioningOverride,
    WorkerDeploymentVersion,
)
from temporalio.worker import WorkerDeploymentConfig

from settings.config import ConfigurationError

# Short, waitless types: they may move to the current version at their next workflow
# task (logic changes still go behind `workflow.patched`). Every other type is pinned.
DEFAULT_AUTO_UPGRADE_TYPES = "demo.pipeline,demo.fanout"


class DeploymentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASKPLANE_WORKER_", extra="ignore")

    versioning: bool = False  # "on"/"off" (or true/false)
    deployment_name: str = Field(default="taskplane", min_length=1)
    build_id: str | None = None
    # Comma-separated task types started with an auto-upgrade override; the rest pin.
    auto_upgrade_types: str = DEFAULT_AUTO_UPGRADE_TYPES

    @field_validator("deployment_name", "build_id")
    @classmethod
    def _no_dot(cls, value: str | None) -> str | None:
        if value is not None and "." in value:  # the version string joins them with a dot
            raise ValueError("must not contain '.'")
        return value

    def version(self) -> WorkerDeploymentVersion:
        if not self.build_id:
            raise ConfigurationError(
                "TASKPLANE_WORKER_VERSIONING=on needs TASKPLANE_WORKER_BUILD_ID"
            )
        return WorkerDeploymentVersion(self.deployment_name, self.build_id)

    def deployment_config(self) -> WorkerDeploymentConfig | None:
        """The worker's versioning options, or None for an unversioned worker."""
        if not self.versioning:
            return None
        return WorkerDeploymentConfig(
            version=self.version(),
            use_worker_versioning=True,
            default_versioning_behavior=VersioningBehavior.PINNED,
        )

    def auto_upgrade(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.auto_upgrade_types.split(",") if t.strip())

    def start_override(self, task_type: str) -> VersioningOverride | None:
        """What a new task of `task_type` is started with (None: the worker's default)."""
        if self.versioning and task_type in self.auto_upgrade():
            return AutoUpgradeVersioningOverride()
        return None


@lru_cache(maxsize=1)
def get_deployment_settings() -> DeploymentSettings:
    return DeploymentSettings()
