"""Offline-first: the server stops mid-session, the client keeps answering on the device and
queues; once the server is back one sync delivers every event exactly once, and the queue
survives a client restart. Edge events land in SQL and the blob store like server events."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from fatigue_guard.client import Backoff, FatigueClient
from fatigue_guard.client.api import ApiError
from fatigue_guard.demo import request_bodies
from fatigue_guard.storage.factory import build_storage
from tests.edge_client.conftest import RestartableApi
from tests.fixtures.models import TrainedRegistry

ONLINE, OFFLINE = 10, 30
NO_WAIT = Backoff(attempts=2, base_s=0.01, max_s=0.01)


def device_rows(registry: TrainedRegistry, n: int) -> tuple[str, pd.DataFrame]:
    """``n`` live moments, all sent by one device (a live user has only about 14)."""
    rows = registry.live.head(n)
    return str(rows["user_id"].iloc[0]), rows


def test_offline_predictions_are_queued_and_synced_exactly_once(
    edge_api: RestartableApi, trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    user, rows = device_rows(trained_registry, ONLINE + OFFLINE)
    bodies = request_bodies(rows)
    device = tmp_path / "device"
    key = edge_api.key_for(user)
    client = FatigueClient(edge_api.url, key, device, user_id=user, timeout_s=1.0, backoff=NO_WAIT)
    assert client.refresh_model().status == "updated"

    online = [
        client.predict(b["features"], b["measured_at"], event_id=b["event_id"])
        for b in bodies[:ONLINE]
    ]
    assert {p.served_by for p in online} == {"server"}
    assert client.pending().events == 0

    edge_api.stop()  # the network goes away mid-session
    offline = [
        client.predict(b["features"], b["measured_at"], event_id=b["event_id"])
        for b in bodies[ONLINE:]
    ]
    assert {p.served_by for p in offline} == {"edge"}
    assert {p.model_version for p in offline} == {client.model_version}
    assert client.submit_feedback(offline[0].event_id, True) == "queued"
    failed = client.sync()  # still down: nothing is lost, nothing is dropped
    assert not failed.complete and failed.accepted == 0
    assert client.pending().events == OFFLINE and client.pending().feedback == 1
    client.close()

    # The app restarts (three arguments only: the user id is stored on the device) ...
    client = FatigueClient(edge_api.url, key, device, backoff=NO_WAIT)
    assert client.pending().events == OFFLINE
    queued = client.queue.pending("event", limit=1000)
    # ... and the server comes back on the same port, HOME and key store.
    edge_api.start()
    report = client.sync()
    assert report.complete
    assert (report.sent, report.accepted, report.duplicates, report.rejected) == (
        OFFLINE,
        OFFLINE,
        0,
        0,
    )
    assert report.feedback_sent == 1 and report.remaining == 0
    assert edge_api.count_predictions() == {"server": ONLINE, "edge": OFFLINE}

    again = client.sync()
    assert (again.sent, again.accepted, again.remaining) == (0, 0, 0)
    # A batch whose acknowledgement was lost is sent again: counted as duplicates, stored once.
    for item in queued:
        client.queue.enqueue("event", item.event_id, item.payload)
    replay = client.sync()
    assert (replay.accepted, replay.duplicates, replay.remaining) == (0, OFFLINE, 0)
    assert edge_api.count_predictions() == {"server": ONLINE, "edge": OFFLINE}
    client.close()

    # Edge data is first-class: the live-data reader (monitoring, retraining) sees the events
    # with served_by="edge", the edge model's version and the device's probability.
    edge_api.stop()  # graceful stop flushes the outbox to the blob store
    storage = build_storage(edge_api.settings)
    start = rows["measured_at"].min().to_pydatetime()
    end = (rows["measured_at"].max() + timedelta(seconds=1)).to_pydatetime()
    live = storage.read_live_dataset(start, end)
    storage.close()
    edge_rows = live[live["served_by"] == "edge"].set_index("event_id")
    assert len(edge_rows) == OFFLINE and len(live) == ONLINE + OFFLINE
    by_id = {p.event_id: p for p in offline}
    assert set(edge_rows.index) == set(by_id)
    assert set(edge_rows["model_version"]) == {client.model_version}
    for event_id, row in edge_rows.iterrows():
        assert abs(row["probability"] - by_id[event_id].fatigue_probability) < 1e-6
    labelled = live[live["fatigue_event"].notna()]
    assert list(labelled["event_id"]) == [offline[0].event_id]


def test_the_client_learns_its_user_from_the_key_on_first_use(
    edge_api: RestartableApi, trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    user, _ = device_rows(trained_registry, 1)
    key = edge_api.key_for(user)
    with FatigueClient(edge_api.url, key, tmp_path / "phone") as client:  # no user_id=
        assert client.user_id == user
    edge_api.stop()
    # Stored on the device: a restart needs no network ...
    with FatigueClient(edge_api.url, key, tmp_path / "phone") as client:
        assert client.user_id == user
    # ... but a brand-new install cannot learn its user offline, and says so.
    with pytest.raises(ValueError, match="unreachable"):
        FatigueClient(edge_api.url, key, tmp_path / "new-phone", timeout_s=0.5)
    edge_api.start()
    with pytest.raises(ApiError) as refused:
        FatigueClient(edge_api.url, "not-a-key", tmp_path / "stranger")
    assert refused.value.status == 401
