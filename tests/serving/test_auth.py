"""The auth matrix: device keys bound to one user, admin tokens separate, limits enforced."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.fixtures.models import TrainedRegistry
from tests.serving.conftest import ADMIN_TOKEN, LiveApi, start_api


def test_missing_or_bad_key_is_401_problem(api: LiveApi) -> None:
    body = api.bodies(1)[0]
    with api.client() as anonymous:
        response = anonymous.post("/v1/predictions", json=body)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        for bad in ("nonsense", "fgk_abc_def", api.key_for(body["user_id"]) + "x"):
            response = anonymous.post(
                "/v1/predictions", json=body, headers={"Authorization": f"Bearer {bad}"}
            )
            assert response.status_code == 401, bad


def test_key_may_not_touch_another_users_data_and_learns_nothing(api: LiveApi) -> None:
    body = api.bodies(1)[0]
    with api.client("someone-else") as client:
        exists = client.post("/v1/predictions", json=body)
        missing = client.post("/v1/predictions", json={**body, "user_id": "no-such-user-ever"})
    assert exists.status_code == missing.status_code == 403
    assert exists.json()["detail"] == missing.json()["detail"]
    # Feedback on another user's event looks exactly like feedback on an unknown event.
    with api.client(body["user_id"]) as owner:
        owner.post("/v1/predictions", json=body).raise_for_status()
    feedback = {
        "event_id": body["event_id"],
        "fatigue_event": True,
        "source": "self_report",
        "observed_at": body["measured_at"],
    }
    with api.client("someone-else") as client:
        theirs = client.post("/v1/feedback", json=feedback)
        unknown = client.post("/v1/feedback", json={**feedback, "event_id": str(uuid.uuid4())})
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["detail"] == unknown.json()["detail"]


def test_admin_routes_need_the_admin_token_not_a_device_key(api: LiveApi) -> None:
    body = api.bodies(1)[0]
    with api.client(body["user_id"]) as device:
        assert device.get("/v1/admin/status").status_code == 403
    with api.client() as anonymous:
        assert anonymous.get("/v1/admin/status").status_code == 401
    with api.admin() as admin:
        status = admin.get("/v1/admin/status")
        assert status.status_code == 200
        assert status.json()["model"]["version"] == api.registry.version
        # The admin token is not a device key either.
        assert admin.post("/v1/predictions", json=body).status_code == 401


def test_admin_routes_are_disabled_without_a_configured_token(
    tmp_path: Path, trained_registry: TrainedRegistry
) -> None:
    settings = trained_registry.settings(tmp_path, admin_token=None)
    for live in start_api(settings, trained_registry):
        response = httpx.get(
            f"{live.url}/v1/admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert response.status_code == 404


def test_rate_limit_answers_429_with_retry_after(
    tmp_path: Path, trained_registry: TrainedRegistry
) -> None:
    settings = trained_registry.settings(tmp_path, rate_limit_per_s=1.0, rate_limit_burst=3)
    for live in start_api(settings, trained_registry):
        body = live.bodies(1)[0]
        with live.client(body["user_id"]) as client:
            codes = [client.post("/v1/predictions", json=body).status_code for _ in range(5)]
            assert codes[:3] == [200, 200, 200]
            limited = client.post("/v1/predictions", json=body)
        assert 429 in codes
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        # The limit is per key: another user's device is unaffected.
        other = next(b for b in live.bodies(50) if b["user_id"] != body["user_id"])
        with live.client(other["user_id"]) as client:
            assert client.post("/v1/predictions", json=other).status_code == 200


@pytest.mark.parametrize("declared", [True, False])
def test_oversized_body_is_413(
    tmp_path: Path, trained_registry: TrainedRegistry, declared: bool
) -> None:
    settings = trained_registry.settings(tmp_path, max_body_bytes=4096)
    for live in start_api(settings, trained_registry):
        body = live.bodies(1)[0]
        big = b'{"items": [' + b",".join([b'{"x": 1}'] * 2000) + b"]}"
        json_type = {"content-type": "application/json"}
        with live.client(body["user_id"]) as client:
            if declared:
                response = client.post("/v1/predictions:batch", content=big, headers=json_type)
            else:
                # Chunked upload: no Content-Length, the limit must still hold.
                response = client.post(
                    "/v1/predictions:batch",
                    content=iter([big[:3000], big[3000:]]),
                    headers=json_type,
                )
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
