"""What the API shows to a caller without credentials: probes, metrics, docs.

Anyone who reaches the port can call the probes, so without the admin token they say only
whether each check passed. /metrics is public by default (Prometheus scrapes without a token)
and must therefore carry nothing about a user; with ``metrics_public=false`` it takes the
admin token. /docs and /redoc follow ``docs_enabled``; /openapi.json is always served.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fatigue_guard.contract.features import FEATURE_NAMES
from tests.fixtures.models import TrainedRegistry
from tests.serving.conftest import ADMIN_TOKEN, LiveApi, start_api


def test_probes_without_the_admin_token_say_only_whether_each_check_passed(
    api: LiveApi,
) -> None:
    body = api.bodies(1)[0]
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    with api.client() as anonymous, api.client(body["user_id"]) as device:
        for client, headers in ((anonymous, {}), (anonymous, wrong), (device, {})):
            assert client.get("/healthz", headers=headers).json() == {"status": "ok"}
            ready = client.get("/readyz", headers=headers)
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "ready",
                "checks": {"model": {"ok": True}, "recording": {"ok": True}},
            }
    with api.admin() as admin:
        detailed = admin.get("/readyz")
    assert detailed.status_code == 200
    model = detailed.json()["checks"]["model"]
    assert model["ok"] is True
    assert model["version"] == api.registry.version
    assert {"pid", "last_error", "refused", "sha256", "source"} <= set(model)


@pytest.fixture
def modelless(tmp_path: Path, trained_registry: TrainedRegistry) -> Iterator[LiveApi]:
    """An API over an empty registry: not ready, which is what the probes must still say."""
    settings = trained_registry.settings(
        tmp_path / "home",
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'empty-mlflow.db'}",
        admin_token=ADMIN_TOKEN,
        metrics_public=False,
        docs_enabled=False,
    )
    yield from start_api(settings, trained_registry)


def test_not_ready_without_the_token_names_the_failed_check_and_no_error(
    modelless: LiveApi,
) -> None:
    with modelless.client() as anonymous:
        ready = anonymous.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not-ready",
        "checks": {"model": {"ok": False}, "recording": {"ok": True}},
    }
    with modelless.admin() as admin:
        detailed = admin.get("/readyz")
    assert detailed.status_code == 503
    assert "last_error" in detailed.json()["checks"]["model"]


def test_public_metrics_carry_no_user_id_and_no_feature_value(api: LiveApi) -> None:
    bodies = api.bodies(3, offset=20)
    user = bodies[0]["user_id"]
    own = [b for b in bodies if b["user_id"] == user]
    bad = {**own[0], "event_id": str(uuid.uuid4())}
    bad["features"] = {**bad["features"], "hours_awake": 987.654, "made_up_feature": 1}
    with api.client(user) as client:
        for body in own:
            client.post("/v1/predictions", json=body).raise_for_status()
        assert client.post("/v1/predictions", json=bad).status_code == 422
        assert client.get(f"/v1/users/{user}/anything").status_code == 404
    with api.admin() as admin:
        assert admin.delete(f"/v1/admin/users/{user}").status_code == 200
    with api.client() as anonymous:
        metrics = anonymous.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert "fg_predictions_total" in text
    assert user not in text
    assert own[0]["event_id"] not in text
    assert "987.654" not in text and "made_up_feature" not in text
    # Label values come from closed sets: route templates, field names, versions, statuses.
    labels = set(re.findall(r'="([^"]*)"', text))
    fields = {label.removeprefix("features.") for label in labels if "features" in label}
    assert fields <= set(FEATURE_NAMES) | {"features"}
    assert not [label for label in labels if label.startswith("/") and user in label]


def test_private_metrics_and_disabled_docs(modelless: LiveApi) -> None:
    body = modelless.bodies(1)[0]
    with modelless.client() as anonymous:
        assert anonymous.get("/metrics").status_code == 401
        for path in ("/docs", "/redoc"):
            assert anonymous.get(path).status_code == 404, path
        assert anonymous.get("/openapi.json").status_code == 200
    with modelless.client(body["user_id"]) as device:
        assert device.get("/metrics").status_code == 403
    with modelless.admin() as admin:
        metrics = admin.get("/metrics")
    assert metrics.status_code == 200
    assert "fg_http_requests_total" in metrics.text


def test_private_metrics_without_an_admin_token_are_off(
    tmp_path: Path, trained_registry: TrainedRegistry
) -> None:
    settings = trained_registry.settings(
        tmp_path / "home",
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'empty-mlflow.db'}",
        admin_token=None,
        metrics_public=False,
    )
    for api in start_api(settings, trained_registry):
        with api.client() as anonymous:
            assert anonymous.get("/metrics").status_code == 404
            assert anonymous.get("/docs").status_code == 200  # docs_enabled defaults to true
