"""What one ``POST /v1/sync`` may cost the server: bounded version lookups, tokens per event.

An unknown ``prediction.model_version`` costs a look at the blob store and the registry. A sync
naming a thousand made-up versions must not buy a thousand of them, nor the next sync the same
thousand again; and a thousand events must cost the key more than one request's worth.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

import fatigue_guard.registry
from fatigue_guard.config import Settings
from fatigue_guard.serving.routes.sync import MAX_VERSION_LOOKUPS_PER_REQUEST
from tests.fixtures.models import TrainedRegistry
from tests.serving.conftest import LiveApi, start_api
from tests.serving.payloads import edge_event, own_bodies


@pytest.fixture
def registry_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every version the API asks the model registry about (the server runs in this process)."""
    calls: list[str] = []
    real = fatigue_guard.registry.get_model_version

    def counting(settings: Settings, version: str) -> Any:
        calls.append(version)
        return real(settings, version)

    monkeypatch.setattr(fatigue_guard.registry, "get_model_version", counting)
    return calls


def test_unknown_versions_are_looked_up_a_bounded_number_of_times(
    api: LiveApi, registry_calls: list[str]
) -> None:
    own = own_bodies(api, 1)[0]
    bogus = [f"no-such-version-{i}" for i in range(40)]
    events = [edge_event(own, version, new_id=True) for version in bogus]
    # Real events ride along: they are stored whatever the bogus ones cost (a phone's queue
    # holds several events of the version it runs; each bogus version here has one).
    events += [edge_event(own, api.registry.version, new_id=True) for _ in range(3)]
    with api.client(own["user_id"]) as client:
        first = client.post("/v1/sync", json={"events": events})
        looked_up_by_first = len(registry_calls)
        second = client.post("/v1/sync", json={"events": events[:40]})
    assert first.status_code == second.status_code == 200, first.text
    assert first.json()["accepted"] == 3
    rejected = {r["index"]: r["errors"] for r in first.json()["rejected"]}
    assert sorted(rejected) == list(range(40))  # every bogus event answered, by index
    assert all(errors[0]["field"] == "prediction.model_version" for errors in rejected.values())
    assert len(second.json()["rejected"]) == 40
    # Per request, at most the bound (the real version is the one being served: no lookup)...
    assert looked_up_by_first <= MAX_VERSION_LOOKUPS_PER_REQUEST
    assert len(registry_calls) - looked_up_by_first <= MAX_VERSION_LOOKUPS_PER_REQUEST
    # ...and no version asked twice: a miss is remembered too.
    assert len(registry_calls) == len(set(registry_calls))


def test_a_known_version_costs_no_lookup_after_the_first(
    api: LiveApi, registry_calls: list[str]
) -> None:
    own = own_bodies(api, 1)[0]
    version = api.registry.version
    with api.client(own["user_id"]) as client:
        for _ in range(3):
            events = [edge_event(own, version, new_id=True) for _ in range(5)]
            answer = client.post("/v1/sync", json={"events": events})
            assert answer.json()["accepted"] == 5, answer.text
    assert registry_calls.count(version) <= 1


def test_sync_is_charged_one_token_per_event(
    tmp_path: Path, trained_registry: TrainedRegistry
) -> None:
    # A refill of one token every 10 s: nothing refills noticeably during the test.
    settings = trained_registry.settings(tmp_path, rate_limit_per_s=0.1, rate_limit_burst=20)
    for live in start_api(settings, trained_registry):
        own = own_bodies(live, 1)[0]
        version = live.registry.version
        with live.client(own["user_id"]) as client:
            big = client.post(
                "/v1/sync",
                json={"events": [edge_event(own, version, new_id=True) for _ in range(30)]},
            )
            # A sync larger than the burst still goes through once (a phone back online after
            # a long time must be able to upload), and leaves the key in debt...
            assert big.status_code == 200, big.text
            assert big.json()["accepted"] == 30
            after = client.post(
                "/v1/sync", json={"events": [edge_event(own, version, new_id=True)]}
            )
            assert after.status_code == 429
            # ...until the events it sent are paid for at the sustained rate.
            assert int(after.headers["retry-after"]) >= 100
            assert client.get("/v1/me").status_code == 429


def test_a_batch_is_charged_one_token_per_item(
    tmp_path: Path, trained_registry: TrainedRegistry
) -> None:
    settings = trained_registry.settings(tmp_path, rate_limit_per_s=0.1, rate_limit_burst=20)
    for live in start_api(settings, trained_registry):
        own = own_bodies(live, 1)[0]
        items = [{**own, "event_id": str(uuid.uuid4())} for _ in range(30)]
        with live.client(own["user_id"]) as client:
            big = client.post("/v1/predictions:batch", json={"items": items})
            assert big.status_code == 200, big.text
            # Thirty scored items cost what thirty single requests would: the key is in debt.
            after = client.post("/v1/predictions", json={**own, "event_id": str(uuid.uuid4())})
            assert after.status_code == 429
            assert int(after.headers["retry-after"]) >= 100
