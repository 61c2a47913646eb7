"""POST /v1/predictions and :batch over real HTTP: answers, idempotency, contract errors."""

from __future__ import annotations

import json
import uuid

import numpy as np

from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.registry import get_model_by_alias, load_pipeline
from tests.serving.conftest import ADMIN_TOKEN, LiveApi


def test_prediction_answers_with_probability_version_and_threshold(api: LiveApi) -> None:
    body = api.bodies(1)[0]
    with api.client(body["user_id"]) as client:
        response = client.post("/v1/predictions", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["event_id"] == body["event_id"]
    assert 0.0 <= answer["fatigue_probability"] <= 1.0
    assert answer["threshold"] == api.registry.threshold
    assert answer["alert"] == (answer["fatigue_probability"] >= answer["threshold"])
    assert answer["model"] == {"name": "fatigue-rf", "version": api.registry.version}
    assert answer["served_by"] == "server"
    assert response.headers["x-request-id"]


def test_served_probability_equals_the_registered_pipeline(api: LiveApi) -> None:
    bodies = api.bodies(20)
    frame = api.registry.live.iloc[:20]
    model = get_model_by_alias(api.settings, "production")
    assert model is not None
    expected = load_pipeline(api.settings, model).predict_proba(feature_matrix(frame))[:, 1]
    served = []
    for body in bodies:
        with api.client(body["user_id"]) as client:
            served.append(client.post("/v1/predictions", json=body).json()["fatigue_probability"])
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_resending_an_event_returns_the_stored_answer_and_stores_once(api: LiveApi) -> None:
    body = api.bodies(1, offset=5)[0]
    with api.client(body["user_id"]) as client:
        first = client.post("/v1/predictions", json=body).json()
        altered = {**body, "features": {**body["features"], "hours_awake": 30.0}}
        second = client.post("/v1/predictions", json=altered).json()
    assert second == first
    assert api.storage.recorder.get(uuid.UUID(body["event_id"])) is not None
    with api.storage.engine.connect() as connection:
        from sqlalchemy import text

        rows = connection.execute(
            text("SELECT count(*) FROM predictions WHERE user_id = :u"), {"u": body["user_id"]}
        ).scalar_one()
    assert rows == 1


def test_contract_violations_are_problem_json_naming_the_field(api: LiveApi) -> None:
    body = api.bodies(1)[0]
    cases = {
        "features.hours_awake": {**body, "features": {**body["features"], "hours_awake": 99}},
        "features.sleep_duration_h": {
            **body,
            "features": {k: v for k, v in body["features"].items() if k != "sleep_duration_h"},
        },
        "measured_at": {**body, "measured_at": "2026-01-01T10:00:00"},
        "event_id": {**body, "event_id": "123"},
        "features.mood": {**body, "features": {**body["features"], "mood": 3}},
    }
    with api.client(body["user_id"]) as client:
        for field, bad in cases.items():
            response = client.post("/v1/predictions", json=bad)
            assert response.status_code == 422, field
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["status"] == 422
            assert field in [e["field"] for e in problem["errors"]], problem
        raw = json.dumps({**body, "event_id": str(uuid.uuid4())})
        assert '"local_hour": ' in raw
        nan_body = client.post(
            "/v1/predictions",
            content=raw.replace('"local_hour": ', '"local_hour": NaN, "x": '),
            headers={"content-type": "application/json"},
        )
        assert nan_body.status_code == 422
        assert nan_body.json()["errors"][0]["field"] == "features.local_hour"
        not_json = client.post(
            "/v1/predictions", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422
        assert not_json.json()["errors"][0]["field"] == "body"
    metrics = httpx_get_text(api, "/metrics")
    assert 'fg_contract_rejections_total{field="features.hours_awake"} 1.0' in metrics


def test_batch_scores_valid_items_and_names_bad_ones(api: LiveApi) -> None:
    bodies = api.bodies(40, offset=100)
    user = bodies[0]["user_id"]
    own = [b for b in bodies if b["user_id"] == user][:3]
    other = next(b for b in bodies if b["user_id"] != user)
    bad = {**own[0], "event_id": str(uuid.uuid4())}
    bad["features"] = {**bad["features"], "awakenings": 2.5}
    items = [*own, bad, other, own[0]]
    with api.client(user) as client:
        response = client.post("/v1/predictions:batch", json={"items": items})
    assert response.status_code == 200, response.text
    result = response.json()
    statuses = [item["status"] for item in result["items"]]
    assert statuses == [200] * len(own) + [422, 403, 200]
    assert result["items"][len(own)]["errors"][0]["field"] == "features.awakenings"
    assert result["items"][-1]["result"] == result["items"][0]["result"]  # replayed event_id
    with api.client(user) as client:
        too_many = client.post("/v1/predictions:batch", json={"items": [own[0]] * 1001})
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "items"


def test_health_readiness_and_metrics(api: LiveApi) -> None:
    with api.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert ready.status_code == 200
        assert ready.json()["checks"]["model"]["version"] == api.registry.version
    body = api.bodies(1, offset=7)[0]
    with api.client(body["user_id"]) as client:
        client.post("/v1/predictions", json=body).raise_for_status()
    text = httpx_get_text(api, "/metrics")
    assert f'fg_predictions_total{{model_version="{api.registry.version}",served_by="server"}}' in (
        text
    )
    assert 'fg_http_requests_total{route="/v1/predictions",status="200"}' in text
    assert "fg_outbox_backlog" in text
    # The answered prediction went through the group-commit writer (the durable path).
    gauges = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("fg_group_")
    }
    assert gauges["fg_group_commits"] >= 1
    assert gauges["fg_group_committed_records"] >= gauges["fg_group_commits"]
    assert len(FEATURE_NAMES) == 18


def httpx_get_text(api: LiveApi, path: str) -> str:
    with api.client() as client:
        return client.get(path).text
