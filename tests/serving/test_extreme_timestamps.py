"""Timestamps whose UTC instant falls outside what a datetime can hold are named, never a 500.

A phone replaying its offline queue must not be stuck behind one such event: the others in the
same request are stored and the bad one gets its own error.
"""

from __future__ import annotations

import uuid

import pytest

from tests.serving.conftest import LiveApi
from tests.serving.payloads import edge_event, own_bodies

# Year 9999 a few hours west of UTC and year 1 east of it: valid local times, no UTC instant.
EXTREMES = ["9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+15:02"]


def _stored(api: LiveApi, event_id: str) -> bool:
    return api.storage.recorder.get(uuid.UUID(event_id)) is not None


@pytest.mark.parametrize("stamp", EXTREMES)
def test_single_routes_answer_422_naming_the_timestamp(api: LiveApi, stamp: str) -> None:
    body = api.bodies(1, offset=5)[0]
    feedback = {
        "event_id": body["event_id"],
        "fatigue_event": True,
        "source": "self_report",
        "observed_at": stamp,
    }
    with api.client(body["user_id"]) as client:
        prediction = client.post("/v1/predictions", json={**body, "measured_at": stamp})
        client.post("/v1/predictions", json=body).raise_for_status()
        report = client.post("/v1/feedback", json=feedback)
    for response, field in ((prediction, "measured_at"), (report, "observed_at")):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]


def test_batch_item_with_extreme_timestamp_fails_alone(api: LiveApi) -> None:
    own = own_bodies(api, 4)
    bad = [{**b, "measured_at": stamp} for b, stamp in zip(own[2:], EXTREMES, strict=True)]
    items = [own[0], bad[0], own[1], bad[1]]
    with api.client(own[0]["user_id"]) as client:
        response = client.post("/v1/predictions:batch", json={"items": items})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [item["status"] for item in answer["items"]] == [200, 422, 200, 422]
    assert (answer["succeeded"], answer["failed"]) == (2, 2)
    for index in (1, 3):
        assert answer["items"][index]["index"] == index
        assert [e["field"] for e in answer["items"][index]["errors"]] == ["measured_at"]
    assert _stored(api, own[0]["event_id"]) and _stored(api, own[1]["event_id"])
    assert not _stored(api, own[2]["event_id"]) and not _stored(api, own[3]["event_id"])


def test_sync_stores_the_good_events_and_rejects_the_extreme_one(api: LiveApi) -> None:
    own = own_bodies(api, 3)
    events = [edge_event(b, api.registry.version) for b in own]
    events[1]["measured_at"] = EXTREMES[0]
    with api.client(own[0]["user_id"]) as client:
        response = client.post("/v1/sync", json={"events": events})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["accepted"], answer["duplicates"]) == (2, 0)
    assert [r["index"] for r in answer["rejected"]] == [1]
    assert [e["field"] for e in answer["rejected"][0]["errors"]] == ["measured_at"]
    assert _stored(api, own[0]["event_id"]) and _stored(api, own[2]["event_id"])
    assert not _stored(api, own[1]["event_id"])
