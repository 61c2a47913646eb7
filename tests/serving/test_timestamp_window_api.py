"""Over HTTP: numeric and implausible timestamps and padded model versions are 422s by field."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from fatigue_guard.client import FatigueClient
from fatigue_guard.client.client import InvalidFeatures
from tests.serving.conftest import LiveApi
from tests.serving.payloads import edge_event, own_bodies


def _fields(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem["errors"]]


@pytest.mark.parametrize("stamp", [0, 1_700_000_000_000, "0020-01-01T00:00:00Z"])
def test_single_routes_refuse_numbers_and_implausible_years(api: LiveApi, stamp: object) -> None:
    body = api.bodies(1, offset=9)[0]
    feedback = {
        "event_id": body["event_id"],
        "fatigue_event": False,
        "source": "incident",
        "observed_at": stamp,
    }
    with api.client(body["user_id"]) as client:
        prediction = client.post("/v1/predictions", json={**body, "measured_at": stamp})
        client.post("/v1/predictions", json=body).raise_for_status()
        report = client.post("/v1/feedback", json=feedback)
    assert prediction.status_code == 422, prediction.text
    assert _fields(prediction.json()) == ["measured_at"]
    assert report.status_code == 422, report.text
    assert _fields(report.json()) == ["observed_at"]


def test_batch_and_sync_name_the_bad_items(api: LiveApi) -> None:
    own = own_bodies(api, 6)
    version = api.registry.version
    items = [own[0], {**own[1], "measured_at": 0}]
    events = [
        edge_event(own[2], version),
        {**edge_event(own[3], version), "measured_at": "0020-01-01T00:00:00Z"},
        edge_event(own[4], f" {version}"),
        edge_event(own[5], version),
    ]
    with api.client(own[0]["user_id"]) as client:
        batch = client.post("/v1/predictions:batch", json={"items": items}).json()
        sync = client.post("/v1/sync", json={"events": events}).json()
    assert [item["status"] for item in batch["items"]] == [200, 422]
    assert _fields(batch["items"][1]) == ["measured_at"]
    assert sync["accepted"] == 2
    assert {r["index"]: _fields(r) for r in sync["rejected"]} == {
        1: ["measured_at"],
        2: ["prediction.model_version"],
    }
    for body in (own[3], own[4]):
        assert api.storage.recorder.get(uuid.UUID(body["event_id"])) is None


def test_openapi_documents_the_window(api: LiveApi) -> None:
    with api.client() as client:
        spec = client.get("/openapi.json").json()

    def described(path: str, field: str) -> str:
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        return str(body["schema"]["properties"][field]["description"])

    for path, field in (("/v1/predictions", "measured_at"), ("/v1/feedback", "observed_at")):
        assert "2000-01-01T00:00:00Z" in described(path, field)


def test_reference_client_refuses_the_timestamp_before_sending(
    api: LiveApi, tmp_path: Path
) -> None:
    body = api.bodies(1, offset=11)[0]
    key = api.key_for(body["user_id"])
    with FatigueClient(api.url, key, tmp_path, user_id=body["user_id"]) as client:
        with pytest.raises(InvalidFeatures) as info:
            client.predict(body["features"], "0020-01-01T00:00:00Z")
        assert [e["field"] for e in info.value.errors] == ["measured_at"]
        assert client.pending().events == 0
