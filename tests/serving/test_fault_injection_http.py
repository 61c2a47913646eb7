"""Outages under real HTTP load: every answered prediction ends up once in SQL and in blob.

A client sends 1,000 predictions in waves while the test takes a store away and brings it back:
Azurite (the blob feature store), and PostgreSQL through a proxy (open connections cut, then new
connections refused, then back). Every response must be 200; after draining, each store holds
exactly the 1,000 distinct event_ids with no duplicate rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from fatigue_guard.demo import send_all
from fatigue_guard.storage.blob.feature_store import FeatureStore
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.services import AzuriteFactory, AzuriteService, TcpProxy
from tests.fixtures.waiting import wait_until
from tests.serving.conftest import LiveApi, start_api

REQUESTS = 1000


def _load_with_outage(api: LiveApi, steps: Sequence[Callable[[], None]]) -> None:
    """Send the bodies in len(steps) + 1 concurrent waves with one fault step between waves, so
    each wave meets a known state of the store (not whatever a timer happened to reach)."""
    bodies = api.bodies(REQUESTS)
    keys = {b["user_id"]: api.key_for(b["user_id"]) for b in bodies}
    # Each device's first request happens before the outage: the API caches verified keys,
    # and an outage must hit recording, which is what this test is about. (An uncached key
    # during a DB outage gets 503 + Retry-After: nothing was answered, so nothing is lost.)
    first_per_user = list({b["user_id"]: b for b in reversed(bodies)}.values())
    _, _, warm_errors = send_all(
        api.url,
        first_per_user,
        concurrency=8,
        headers_for=lambda body: {"Authorization": f"Bearer {keys[body['user_id']]}"},
    )
    assert warm_errors == 0

    waves = len(steps) + 1
    answers: list[dict[str, Any]] = []
    for wave in range(waves):
        if wave:
            steps[wave - 1]()
        _, answered, errors = send_all(
            api.url,
            bodies[wave::waves],
            concurrency=8,
            headers_for=lambda body: {"Authorization": f"Bearer {keys[body['user_id']]}"},
        )
        assert errors == 0, f"{errors} failed requests in wave {wave}"
        answers.extend(answered)
    assert len(answers) == REQUESTS
    assert {a["event_id"] for a in answers} == {b["event_id"] for b in bodies}

    assert api.storage.recorder.drain(timeout_s=90)
    live = api.registry.live
    start = live["measured_at"].min().to_pydatetime()
    end = live["measured_at"].max().to_pydatetime() + timedelta(seconds=1)
    stored = api.storage.read_live_dataset(start, end)
    assert set(stored["event_id"].astype(str)) == {b["event_id"] for b in bodies}
    store: FeatureStore = api.storage.feature_store
    raw_rows = sum(len(store.read_key(key)) for key in store.blobs.list("features/"))
    assert raw_rows == REQUESTS  # no duplicate rows in the files, not only after dedup
    with api.storage.engine.connect() as connection:
        count, distinct = connection.execute(
            text("SELECT count(*), count(DISTINCT event_id) FROM predictions")
        ).one()
    assert count == distinct == REQUESTS


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.azurite
def test_blob_store_outage_under_http_load(
    postgres_url: str,
    azurite_factory: AzuriteFactory,
    tmp_path: Path,
    trained_registry: TrainedRegistry,
) -> None:
    azurite = azurite_factory()
    settings = trained_registry.settings(
        tmp_path,
        database_url=postgres_url,
        azure_storage_connection_string=azurite.connection_string,
        blob_container="http-faults",
        blob_flush_max_records=100,
        blob_flush_max_age_s=0.5,
        rate_limit_burst=10_000,
        key_cache_ttl_s=600,
    )
    for api in start_api(settings, trained_registry):
        _blob_outage(api, azurite)


def _blob_outage(api: LiveApi, azurite: AzuriteService) -> None:
    recorder = api.storage.recorder
    _load_with_outage(
        api,
        [
            azurite.stop,
            # The flusher must meet the dead endpoint before it comes back.
            lambda: wait_until(lambda: recorder.stats().flush_failures > 0, timeout_s=30),
            azurite.start,
        ],
    )
    assert recorder.stats().flush_failures > 0, "the outage was never hit"


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.azurite
def test_database_outage_under_http_load(
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
        blob_flush_max_records=100,
        blob_flush_max_age_s=0.5,
        rate_limit_burst=10_000,
        key_cache_ttl_s=600,
        # Only requests probe the DB here: a replayer probing too would shut the gate again
        # and let a wave pass through the spool without ever opening a connection.
        spool_replay_interval_s=3600,
        db_connect_timeout_s=1.0,
    )
    for api in start_api(settings, trained_registry):
        _database_outage(api, proxy)


def _database_outage(api: LiveApi, proxy: TcpProxy) -> None:
    recorder = api.storage.recorder
    spooled_before_retry = 0

    def retry_gate_open() -> None:
        nonlocal spooled_before_retry
        # The recorder tries the DB again after its back-off: the next wave's first group
        # commit must open a new connection (the failed one was dropped), and fail.
        wait_until(lambda: recorder.stats().db_available, timeout_s=10)
        assert recorder.stats().db_available
        spooled_before_retry = recorder.stats().spooled_total

    # waves: healthy, open connections cut, new connections refused, back up
    _load_with_outage(api, [proxy.stop, retry_gate_open, proxy.start])
    assert spooled_before_retry > 0, "the outage was never hit"
    assert recorder.stats().spooled_total > spooled_before_retry, "no new connection failed"
