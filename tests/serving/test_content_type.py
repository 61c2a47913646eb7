"""The JSON routes read only JSON: any other declared media type is a 415 problem+json."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.serving.conftest import LiveApi

REFUSED = [
    "text/plain",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "text/xml",
    "application/jsonx",
    "application/json-patch",
    "",
    None,  # no Content-Type at all
]
ACCEPTED = [
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON;charset=UTF-8",
    "application/vnd.fatigue-guard+json",
]


def _requests(api: LiveApi) -> dict[str, tuple[str, dict[str, Any]]]:
    """One valid body per JSON route, each with an event of its own."""
    bodies = api.bodies(400)
    user = bodies[0]["user_id"]
    own = [{**b, "event_id": str(uuid.uuid4())} for b in bodies if b["user_id"] == user][:4]
    edge = {
        **{k: own[3][k] for k in ("event_id", "user_id", "measured_at", "features")},
        "prediction": {
            "fatigue_probability": 0.1,
            "alert": False,
            "model_version": api.registry.version,
        },
    }
    feedback = {
        "event_id": own[0]["event_id"],
        "fatigue_event": True,
        "source": "self_report",
        "observed_at": own[0]["measured_at"],
    }
    return {
        "/v1/predictions": (user, own[0]),
        "/v1/predictions:batch": (user, {"items": [own[1], own[2]]}),
        "/v1/feedback": (user, feedback),
        "/v1/sync": (user, {"events": [edge]}),
    }


def _post(api: LiveApi, user: str, path: str, body: Any, content_type: str | None) -> Any:
    headers = {} if content_type is None else {"Content-Type": content_type}
    with api.client(user) as client:
        return client.post(path, content=json.dumps(body).encode(), headers=headers)


def test_other_media_types_are_415_problems_and_store_nothing(api: LiveApi) -> None:
    for path, (user, body) in _requests(api).items():
        for content_type in REFUSED:
            response = _post(api, user, path, body, content_type)
            assert response.status_code == 415, (path, content_type, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["status"] == 415
            assert problem["instance"] == path
            assert "application/json" in problem["detail"]
            assert response.headers["accept-post"] == "application/json"
    _, single = _requests(api)["/v1/predictions"]
    assert api.storage.recorder.get(uuid.UUID(single["event_id"])) is None


@pytest.mark.parametrize("content_type", ACCEPTED)
def test_json_with_or_without_parameters_and_json_suffix_types_are_read(
    api: LiveApi, content_type: str
) -> None:
    requests = _requests(api)
    for path in ("/v1/predictions", "/v1/feedback", "/v1/predictions:batch", "/v1/sync"):
        user, body = requests[path]
        response = _post(api, user, path, body, content_type)
        assert response.status_code in (200, 201), (path, content_type, response.text)


def test_authentication_is_checked_before_the_media_type(api: LiveApi) -> None:
    _, body = _requests(api)["/v1/predictions"]
    with api.client() as anonymous:
        response = anonymous.post(
            "/v1/predictions", content=json.dumps(body), headers={"Content-Type": "text/plain"}
        )
    assert response.status_code == 401


def test_openapi_lists_the_415_answer(api: LiveApi) -> None:
    with api.client() as client:
        spec = client.get("/openapi.json").json()
    for path in ("/v1/predictions", "/v1/predictions:batch", "/v1/feedback", "/v1/sync"):
        assert "415" in spec["paths"][path]["post"]["responses"], path
