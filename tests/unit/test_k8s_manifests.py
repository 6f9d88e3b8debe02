"""deploy/k8s/: valid Kubernetes objects that agree with the code, checked offline.

Every resource file is validated against the Kubernetes API's schemas (strict: no
unknown field) with the `kubernetes-validate` package; the kustomizations' resources,
bases and patches exist and name objects that exist; `kubectl kustomize` renders the
base and the example overlay (tests/k8s_manifests.py), and the rendered objects are
validated again and checked against the code: settings that exist, real CLI commands,
probes on /healthz and /readyz, the ports the settings name, the Dockerfile's user, and
grace periods above what the processes take to stop.

What is NOT checked (no cluster here or in CI): that the pods start, that the probes
pass, that the preStop delay is long enough for a given cluster's endpoint propagation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from cli.main import build_parser
from settings import Settings
from tests.deploy_files import DOCKERFILE, ROOT
from tests.k8s_manifests import (
    BASE,
    KUBERNETES_VERSION,
    KUSTOMIZATIONS,
    OVERLAY,
    by_kind,
    containers,
    documents,
    kustomization,
    render,
)

SETTINGS = {f"TASKPLANE_{name.upper()}" for name in Settings.model_fields}


def resource_files() -> list[Path]:
    files = []
    for folder in KUSTOMIZATIONS:
        for entry in kustomization(folder).get("resources", []):
            path = folder / entry
            if path.is_file():
                files.append(path)
    return files


@pytest.mark.parametrize("path", resource_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_resource_file_is_a_valid_kubernetes_object(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_kustomization_entries_exist_and_patches_name_real_objects(folder: Path) -> None:
    spec = kustomization(folder)
    for entry in [*spec.get("resources", []), *spec.get("bases", [])]:
        assert (folder / entry).exists(), entry
    for entry in spec.get("bases", []):
        assert (folder / entry / "kustomization.yaml").is_file(), entry
    known = {
        (doc["kind"], doc["metadata"]["name"])
        for base in [folder, *(folder / b for b in spec.get("bases", []))]
        for entry in kustomization(base).get("resources", [])
        if (base / entry).is_file()
        for doc in documents(base / entry)
    }
    for patch in spec.get("patchesStrategicMerge", []):
        assert (folder / patch).is_file(), patch
        for doc in documents(folder / patch):
            assert (doc["kind"], doc["metadata"]["name"]) in known, (patch, doc["metadata"])


@pytest.fixture(scope="module", params=[BASE, OVERLAY], ids=["base", "overlay"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    folder: Path = request.param
    return render(folder)


def test_rendered_objects_are_valid(rendered: list[dict[str, Any]]) -> None:
    kinds = {doc["kind"] for doc in rendered}
    assert {"ConfigMap", "Deployment", "Job", "Service", "PodDisruptionBudget"} <= kinds
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_overlay_renders_everything_it_refers_to() -> None:
    docs = render(OVERLAY)
    configs, secrets = by_kind(docs, "ConfigMap"), by_kind(docs, "Secret")
    workloads = [*by_kind(docs, "Deployment").values(), *by_kind(docs, "Job").values()]
    for workload in workloads:
        for container in containers(workload):
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configs
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
    for found in [*configs.values(), *secrets.values()]:
        assert set(found["data"]) <= SETTINGS, set(found["data"]) - SETTINGS
    (config,) = configs.values()
    assert config["data"]["TASKPLANE_DATABASE_POOLER"] == "transaction"
    assert config["data"]["TASKPLANE_REDIS_URL"]  # the base's keys survive the patch
    (secret,) = secrets.values()
    assert {"TASKPLANE_DATABASE_URL", "TASKPLANE_DATABASE_DIRECT_URL"} <= set(secret["data"])
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {
        "taskplane"
    }


def test_workloads_run_real_commands_as_the_images_user(rendered: list[dict[str, Any]]) -> None:
    uid = re.search(r"useradd .*--uid (\d+)", DOCKERFILE.read_text())
    assert uid
    workloads = {**by_kind(rendered, "Deployment"), **by_kind(rendered, "Job")}
    commands = set()
    for workload in workloads.values():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == int(uid.group(1))
        for container in containers(workload):
            command = container["command"]
            assert command[0] == "taskplane"
            assert build_parser().parse_args(command[1:]).command == command[1]
            commands.add(command[1])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]["memory"]
    assert commands == {"api", "worker", "migrate"}


def _config(rendered: list[dict[str, Any]]) -> dict[str, str]:
    (config,) = by_kind(rendered, "ConfigMap").values()
    data: dict[str, str] = config["data"]
    return data


def _one(rendered: list[dict[str, Any]], command: str) -> dict[str, Any]:
    (workload,) = [
        w
        for w in by_kind(rendered, "Deployment").values()
        if containers(w)[0]["command"][1] == command
    ]
    return workload


def test_api_probes_ports_and_graceful_shutdown(rendered: list[dict[str, Any]]) -> None:
    api = _one(rendered, "api")
    (container,) = containers(api)
    port = int(_config(rendered)["TASKPLANE_API_PORT"])
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # preStop keeps serving while the endpoint leaves rotation; then SIGTERM and uvicorn's
    # graceful shutdown (SSE streams end, clients resume elsewhere): the grace covers both.
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    drain = re.search(r"timeout_graceful_shutdown=(\d+)", (ROOT / "api" / "main.py").read_text())
    assert drain
    grace = api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(sleep[1]) + int(drain.group(1))
    (service,) = [s for s in by_kind(rendered, "Service").values() if "clusterIP" not in s["spec"]]
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_worker_metrics_ports_and_shutdown_grace(rendered: list[dict[str, Any]]) -> None:
    worker = _one(rendered, "worker")
    (container,) = containers(worker)
    config = _config(rendered)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "metrics": int(config["TASKPLANE_WORKER_METRICS_PORT"]),
        "metrics-temporal": int(config["TASKPLANE_WORKER_METRICS_TEMPORAL_PORT"]),
    }
    assert config["TASKPLANE_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"]["port"] == "metrics"
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(config["TASKPLANE_WORKER_SHUTDOWN_GRACE_SECONDS"])
    (headless,) = [s for s in by_kind(rendered, "Service").values() if "clusterIP" in s["spec"]]
    assert {p["targetPort"] for p in headless["spec"]["ports"]} == set(ports)
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= labels.items()
