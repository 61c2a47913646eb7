"""Another user's event_id in a sync is a conflict, as it is a 409 on /v1/predictions.

A duplicate tells the device "already stored, forget it"; a conflict must not, or the event is
lost on the phone while the server never stored it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fatigue_guard.client import FatigueClient
from tests.serving.conftest import LiveApi
from tests.serving.payloads import edge_event

CONFLICT = [{"field": "event_id", "message": "already used by another event"}]


def _two_users(api: LiveApi) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One body of a first user, and three of a second."""
    bodies = api.bodies(400)
    first = bodies[0]
    second = [b for b in bodies if b["user_id"] != first["user_id"]]
    second = [b for b in second if b["user_id"] == second[0]["user_id"]]
    assert len(second) >= 3
    return first, second[:3]


def test_sync_reports_another_users_event_id_as_a_conflict(api: LiveApi) -> None:
    first, second = _two_users(api)
    version = api.registry.version
    with api.client(first["user_id"]) as client:
        client.post("/v1/predictions", json=first).raise_for_status()
    taken = edge_event(second[0], version, event_id=first["event_id"], alert=True)
    events = [
        edge_event(second[1], version, alert=True),
        taken,
        edge_event(second[2], version, alert=True),
    ]
    with api.client(second[0]["user_id"]) as client:
        single = client.post("/v1/predictions", json={**second[0], "event_id": first["event_id"]})
        answer = client.post("/v1/sync", json={"events": events}).json()
        replay = client.post("/v1/sync", json={"events": events}).json()
    assert single.status_code == 409
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (2, 0, [])
    assert answer["conflicts"] == [{"index": 1, "errors": CONFLICT}]
    # Replaying its own events is a duplicate; the taken id stays a conflict every time.
    assert (replay["accepted"], replay["duplicates"]) == (0, 2)
    assert replay["conflicts"] == [{"index": 1, "errors": CONFLICT}]
    stored = api.storage.recorder.get(uuid.UUID(first["event_id"]))
    assert stored is not None and stored.user_id == first["user_id"]
    assert stored.served_by == "server"


def test_reference_client_keeps_and_reports_a_conflicting_event(
    api: LiveApi, tmp_path: Path
) -> None:
    first, second = _two_users(api)
    version = api.registry.version
    with api.client(first["user_id"]) as client:
        client.post("/v1/predictions", json=first).raise_for_status()
    user = second[0]["user_id"]
    with FatigueClient(api.url, api.key_for(user), tmp_path, user_id=user) as device:
        # What an offline prediction leaves in the queue (see FatigueClient.predict).
        taken = edge_event(second[0], version, event_id=first["event_id"], alert=True)
        device.queue.enqueue("event", taken["event_id"], taken)
        fine = edge_event(second[1], version, alert=True)
        device.queue.enqueue("event", fine["event_id"], fine)
        report = device.sync()
        assert report.complete
        assert (report.sent, report.accepted, report.duplicates) == (2, 1, 0)
        assert report.conflicts == 1
        assert report.conflict_event_ids == (first["event_id"],)
        # Kept on the device, out of the sending queue: resending cannot make the id free.
        counts = device.pending()
        assert (counts.events, counts.dead) == (0, 1)
        kept = device.queue.parked("event")
        assert [item.event_id for item in kept] == [first["event_id"]]
        assert "event_id" in kept[0].reason
        again = device.sync()
        assert (again.sent, again.conflicts) == (0, 0)
        assert device.pending().dead == 1
