"""deploy/k8s/ read as tests need it: kustomizations, their files, and renders by kubectl.

Rendering is kustomize's own (`kubectl kustomize`: Debian's `kubernetes-client` package
in CI, kustomize v2.0.3; any newer kubectl works too); no renderer of ours. Without
kubectl the tests that render skip, or fail when TASKPLANE_TEST_REQUIRE_KUBECTL=1 (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_files import ROOT

K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
KUSTOMIZATIONS = (BASE, OVERLAY)
# The Kubernetes release whose schemas (from the kubernetes-validate package) the
# manifests are checked against, strictly (no unknown fields).
KUBERNETES_VERSION = "1.30.0"


def kustomization(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return loaded


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found:
        return found
    reason = "kubectl is not installed (apt-get install kubernetes-client)"
    if os.environ.get("TASKPLANE_TEST_REQUIRE_KUBECTL") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def render(folder: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize folder`, parsed (kustomize v5 warns on stderr: ignored)."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return found
