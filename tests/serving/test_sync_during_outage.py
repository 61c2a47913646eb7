"""A sync made while the SQL database is down is stored (spooled) but cannot be checked yet:
the server says ``pending`` rather than "accepted", and the device keeps those events until a
later sync gets the real answer. Otherwise an event the replay drops as another user's would be
deleted from the phone while the server never kept it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.fixtures.models import TrainedRegistry
from tests.fixtures.services import TcpProxy
from tests.serving.conftest import LiveApi, start_api
from tests.serving.payloads import edge_event

CONFLICT = [{"field": "event_id", "message": "already used by another event"}]


@pytest.mark.postgres
@pytest.mark.azurite
def test_a_sync_while_the_database_is_down_is_pending_then_answered(
    postgres_proxy: tuple[TcpProxy, str],
    azurite: str,
    blob_container: str,
    tmp_path: Path,
    trained_registry: TrainedRegistry,
) -> None:
    proxy, url = postgres_proxy
    settings = trained_registry.settings(
        tmp_path,
        database_url=url,
        azure_storage_connection_string=azurite,
        blob_container=blob_container,
        key_cache_ttl_s=600,
        rate_limit_burst=10_000,
    )
    for api in start_api(settings, trained_registry):
        _pending_then_answered(api, proxy)


def _pending_then_answered(api: LiveApi, proxy: TcpProxy) -> None:
    bodies = api.bodies(400)
    first = bodies[0]
    second = [b for b in bodies if b["user_id"] != first["user_id"]][:1][0]
    mine = [b for b in bodies if b["user_id"] == second["user_id"]][:2]
    version = api.registry.version
    with api.client(first["user_id"]) as client:
        client.post("/v1/predictions", json=first).raise_for_status()
    events = [
        edge_event(mine[0], version, new_id=True, alert=True),
        edge_event(mine[1], version, event_id=first["event_id"], alert=True),  # another user's id
    ]
    with api.client(second["user_id"]) as client:
        assert client.get("/v1/me").status_code == 200  # the key is verified while SQL is up
        proxy.stop()
        try:
            during = client.post("/v1/sync", json={"events": events})
        finally:
            proxy.start()
        assert during.status_code == 200, during.text
        assert during.json() == {
            "accepted": 0,
            "duplicates": 0,
            "accepted_pending": 2,
            "pending": [0, 1],
            "conflicts": [],
            "rejected": [],
        }
        assert api.storage.recorder.drain(timeout_s=60)
        after = client.post("/v1/sync", json={"events": events}).json()
    # Ours was kept by the replay (a duplicate now); the other user's id was not ours to take.
    assert (after["accepted"], after["duplicates"], after["accepted_pending"]) == (0, 1, 0)
    assert after["conflicts"] == [{"index": 1, "errors": CONFLICT}]
    stored = api.storage.recorder.get(uuid.UUID(first["event_id"]))
    assert stored is not None and stored.user_id == first["user_id"]
