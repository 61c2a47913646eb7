"""Feedback joins to predictions; sync is idempotent and names bad events; erasure is total."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text

from tests.fixtures.waiting import wait_until
from tests.serving.conftest import LiveApi
from tests.serving.payloads import edge_event, own_bodies


def test_feedback_joins_its_prediction_and_is_idempotent(api: LiveApi) -> None:
    body = api.bodies(1, offset=3)[0]
    feedback = {
        "event_id": body["event_id"],
        "fatigue_event": True,
        "source": "self_report",
        "observed_at": body["measured_at"],
    }
    with api.client(body["user_id"]) as client:
        assert client.post("/v1/feedback", json=feedback).status_code == 404  # no prediction yet
        client.post("/v1/predictions", json=body).raise_for_status()
        first = client.post("/v1/feedback", json=feedback)
        again = client.post("/v1/feedback", json={**feedback, "fatigue_event": False})
        bad = client.post("/v1/feedback", json={**feedback, "source": "guess"})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["fatigue_event"] is True  # the first report stands
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "source"
    api.storage.recorder.drain()
    measured = first.json()["observed_at"]
    assert measured
    frame = api.storage.read_live_dataset(
        api.registry.live["measured_at"].min().to_pydatetime(),
        api.registry.live["measured_at"].max().to_pydatetime() + timedelta(seconds=1),
        labelled_only=True,
    )
    row = frame[frame["event_id"].astype(str) == body["event_id"]]
    assert len(row) == 1
    assert bool(row["fatigue_event"].iloc[0]) is True


def test_sync_is_idempotent_and_names_bad_events_by_index(api: LiveApi) -> None:
    own = own_bodies(api, 4)
    version = api.registry.version
    events = [edge_event(b, version) for b in own[:3]]
    broken = edge_event(own[3], version)
    broken["features"] = {**broken["features"], "resting_hr_bpm": 400}
    unknown_version = edge_event({**own[3], "event_id": str(uuid.uuid4())}, "999")
    with api.client(own[0]["user_id"]) as client:
        first = client.post("/v1/sync", json={"events": [*events, broken, unknown_version]})
        second = client.post("/v1/sync", json={"events": events})
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 3
    assert first.json()["duplicates"] == 0
    rejected = {r["index"]: r["errors"] for r in first.json()["rejected"]}
    assert rejected[3][0]["field"] == "features.resting_hr_bpm"
    assert rejected[4][0]["field"] == "prediction.model_version"
    assert second.json() == {
        "accepted": 0,
        "duplicates": 3,
        "accepted_pending": 0,
        "pending": [],
        "conflicts": [],
        "rejected": [],
    }
    with api.storage.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT served_by, count(*) FROM predictions GROUP BY served_by")
        ).all()
    assert dict(rows) == {"edge": 3}


def test_erasure_removes_the_user_from_sql_and_blob(api: LiveApi) -> None:
    own = own_bodies(api, 3)
    other = next(b for b in api.bodies(400) if b["user_id"] != own[0]["user_id"])
    user = own[0]["user_id"]
    with api.client(user) as client:
        for body in own:
            client.post("/v1/predictions", json=body).raise_for_status()
    with api.client(other["user_id"]) as client:
        client.post("/v1/predictions", json=other).raise_for_status()
    assert api.storage.recorder.drain()
    start = api.registry.live["measured_at"].min().to_pydatetime()
    end = api.registry.live["measured_at"].max().to_pydatetime() + timedelta(seconds=1)
    wait_until(lambda: len(api.storage.read_live_dataset(start, end)) >= 4, timeout_s=10)
    with api.admin() as admin:
        response = admin.delete(f"/v1/admin/users/{user}")
    assert response.status_code == 200, response.text
    removed = response.json()["removed"]
    assert removed["predictions"] == 3
    assert removed["blob_records"] == 3
    remaining = api.storage.read_live_dataset(start, end)
    assert user not in set(remaining["user_id"])
    assert other["user_id"] in set(remaining["user_id"])
    with api.storage.engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM predictions WHERE user_id = :u"), {"u": user}
        ).scalar_one()
    assert count == 0
