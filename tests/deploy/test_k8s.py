"""The kustomize base and overlay render with ``kubectl kustomize`` and every object validates
offline against the Kubernetes API schemas (kubernetes-validate, strict: unknown fields fail).

kubectl comes from the machine (.ci/run installs it); with CI=true a missing or too old kubectl
fails these tests instead of skipping them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from fatigue_guard.config import Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# The oldest Kubernetes the manifests are written for (CronJob timeZone is GA from 1.27).
KUBERNETES_VERSION = "1.30.0"
TARGETS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have it: see .ci/run)")
    pytest.skip(reason)


@cache
def _kubectl() -> str | None:
    return shutil.which("kubectl")


def _render(target: Path) -> list[dict[str, Any]]:
    kubectl = _kubectl()
    if kubectl is None:
        _missing("kubectl is not installed")
    assert kubectl is not None
    version = json.loads(
        subprocess.run(
            [kubectl, "version", "--client", "-o", "json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    kustomize = version.get("kustomizeVersion", "v0")
    # Directories in `resources` and the `labels` field need kustomize 4 or later.
    if int(kustomize.lstrip("v").split(".")[0]) < 4:
        _missing(f"kubectl's kustomize is {kustomize}; these manifests need v4 or later")
    out = subprocess.run(
        [kubectl, "kustomize", str(target)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=sorted(TARGETS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, _render(TARGETS[request.param])


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _container(pod_template: dict[str, Any]) -> dict[str, Any]:
    [container] = pod_template["spec"]["containers"]
    return container


def test_every_object_validates_against_the_kubernetes_schemas(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    kinds = sorted(d["kind"] for d in docs)
    for kind in ("CronJob", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert kind in kinds
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_broken_object(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    broken = copy.deepcopy(_one(docs, "Deployment", "fatigue-guard-api"))
    _container(broken["spec"]["template"])["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_api_deployment(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    api = _one(docs, "Deployment", "fatigue-guard-api")
    pod = api["spec"]["template"]
    c = _container(pod)
    assert c["command"][:2] == ["fatigue-guard", "serve"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    # FATIGUE_GUARD_HOME (spool, model cache) is a writable emptyDir.
    [settings] = [d for d in docs if d["metadata"]["name"].startswith("fatigue-guard-settings")]
    home = settings["data"]["FATIGUE_GUARD_HOME"]
    [mount] = [m for m in c["volumeMounts"] if m["mountPath"] == home]
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume
    assert "replicas" not in api["spec"]  # the autoscaler's
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_service_pdb_and_autoscaler_select_the_api_pods(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    labels = _one(docs, "Deployment", "fatigue-guard-api")["spec"]["template"]["metadata"]
    pod_labels = labels["labels"]
    service = _one(docs, "Service", "fatigue-guard-api")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    pdb = _one(docs, "PodDisruptionBudget", "fatigue-guard-api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = _one(docs, "HorizontalPodAutoscaler", "fatigue-guard-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "fatigue-guard-api"
    assert hpa["spec"]["minReplicas"] >= 2


def test_cronjobs(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    commands = {}
    for doc in (d for d in docs if d["kind"] == "CronJob"):
        spec = doc["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        pod = spec["jobTemplate"]["spec"]["template"]
        assert pod["spec"]["restartPolicy"] == "Never"
        assert _container(pod)["securityContext"]["readOnlyRootFilesystem"] is True
        commands[doc["metadata"]["name"]] = _container(pod)["command"]
    assert commands["fatigue-guard-monitor"][:3] == ["fatigue-guard", "monitor", "run"]
    assert commands["fatigue-guard-retrain"][:2] == ["fatigue-guard", "retrain"]
    assert commands["fatigue-guard-db-upgrade"] == ["fatigue-guard", "db", "upgrade"]
    assert _one(docs, "CronJob", "fatigue-guard-db-upgrade")["spec"]["suspend"] is True


def test_mlflow_server_on_postgresql_with_blob_artifacts(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    c = _container(_one(docs, "Deployment", "mlflow")["spec"]["template"])
    assert c["command"][:2] == ["mlflow", "server"] and "--serve-artifacts" in c["command"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-secrets"
    [config] = [d for d in docs if d["metadata"]["name"].startswith("mlflow-settings")]
    assert config["data"]["MLFLOW_ARTIFACTS_DESTINATION"].startswith("wasbs://")
    assert _one(docs, "Service", "mlflow")["spec"]["ports"][0]["port"] == 5000


def test_settings_are_real_settings_and_secrets_stay_out(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    assert not [d for d in docs if d["kind"] == "Secret"]
    [config] = [d for d in docs if d["metadata"]["name"].startswith("fatigue-guard-settings")]
    fields = set(Settings.model_fields)
    for key in config["data"]:
        if key != "MLFLOW_TRACKING_URI":
            assert key.removeprefix("FATIGUE_GUARD_").lower() in fields, key
    # The ConfigMap's values are valid settings.
    values = {k.removeprefix("FATIGUE_GUARD_").lower(): v for k, v in config["data"].items()}
    assert Settings.model_validate(values).retrain_trigger == "cli"


def test_overlay_sets_namespace_image_and_scale() -> None:
    docs = _render(TARGETS["production"])
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "fatigue-guard"
    api = _container(_one(docs, "Deployment", "fatigue-guard-api")["spec"]["template"])
    assert api["image"].endswith("/fatigue-guard:0.1.0") and "/" in api["image"]
    assert _one(docs, "HorizontalPodAutoscaler", "fatigue-guard-api")["spec"]["maxReplicas"] == 20
