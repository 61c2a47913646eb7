"""Blob stores, the Parquet layout, and the outbox flush to local folder and Azurite."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.storage.blob.feature_store import FeatureStore
from fatigue_guard.storage.blob.stores import (
    AzureBlobStore,
    BlobNotFound,
    BlobStore,
    LocalBlobStore,
)
from fatigue_guard.storage.records import PredictionRecord
from fatigue_guard.storage.sql.tables import OutboxEntry
from tests.fixtures.waiting import wait_until
from tests.storage.conftest import BASE_TIME, StorageFactory, spread_records


@pytest.fixture(params=["local", pytest.param("azurite", marks=pytest.mark.azurite)])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path, blob_container: str) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return AzureBlobStore(request.getfixturevalue("azurite"), blob_container)


def test_blob_store_put_get_list_delete(blob_store: BlobStore) -> None:
    blob_store.put("features/v1/date=2025-03-01/a.parquet", b"one")
    blob_store.put("features/v1/date=2025-03-02/b.parquet", b"two")
    blob_store.put("other/c.txt", b"three")
    blob_store.put("features/v1/date=2025-03-01/a.parquet", b"one again")  # overwrite

    assert blob_store.get("features/v1/date=2025-03-01/a.parquet") == b"one again"
    assert blob_store.list("features/") == [
        "features/v1/date=2025-03-01/a.parquet",
        "features/v1/date=2025-03-02/b.parquet",
    ]
    blob_store.delete("other/c.txt")
    blob_store.delete("other/c.txt")  # deleting twice is fine
    with pytest.raises(BlobNotFound):
        blob_store.get("other/c.txt")
    with pytest.raises(ValueError):
        blob_store.put("../escape", b"x")


def test_batches_follow_the_documented_layout_and_columns(tmp_path: Path) -> None:
    store = FeatureStore(LocalBlobStore(tmp_path))
    records = spread_records(20)
    keys = store.write_batch("batch-1", records)

    days = sorted({r.measured_at.date().isoformat() for r in records})
    assert keys == [f"features/v1/date={day}/batch-1.parquet" for day in days]
    table = pq.read_table(tmp_path / keys[0])
    assert table.column_names[:4] == ["event_id", "user_id", "measured_at", "received_at"]
    assert table.column_names[4 : 4 + len(FEATURE_NAMES)] == list(FEATURE_NAMES)
    for column in ("probability", "alert", "model_version", "served_by", "device_model"):
        assert column in table.column_names


def test_read_deduplicates_and_filters_the_window(tmp_path: Path) -> None:
    store = FeatureStore(LocalBlobStore(tmp_path))
    records = spread_records(30)
    store.write_batch("batch-1", records[:20])
    store.write_batch("batch-2", records[10:])  # overlaps batch-1 on ten records

    everything = store.read(BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=5))
    assert sorted(everything["event_id"].to_pylist()) == sorted(str(r.event_id) for r in records)

    first_day = store.read(BASE_TIME, BASE_TIME + timedelta(hours=24))
    expected = {str(r.event_id) for r in records if r.measured_at < BASE_TIME + timedelta(hours=24)}
    assert set(first_day["event_id"].to_pylist()) == expected
    assert first_day.num_rows == len(expected)


def flush_and_read(
    storage_factory: StorageFactory, url: str, n: int, **settings: object
) -> set[str]:
    storage = storage_factory(url, **settings)
    records = spread_records(n)
    for record in records[: n // 2]:
        storage.recorder.record(record)
    storage.recorder.record_many(records[n // 2 :])
    assert storage.recorder.drain(timeout_s=30)
    assert storage.recorder.stats().outbox_backlog == 0
    table = storage.feature_store.read(BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=5))
    ids = table["event_id"].to_pylist()
    assert len(ids) == len(set(ids))
    raw_rows = sum(
        storage.feature_store.read_key(key).num_rows for key in storage.blobs.list("features/")
    )
    assert raw_rows == len(ids)  # no duplicate rows even before dedup
    assert set(ids) == {str(r.event_id) for r in records}
    return set(ids)


def test_outbox_flushes_to_the_local_folder(
    database_url: str, storage_factory: StorageFactory
) -> None:
    assert len(flush_and_read(storage_factory, database_url, 120)) == 120


@pytest.mark.azurite
def test_outbox_flushes_to_azurite(
    database_url: str, storage_factory: StorageFactory, azurite: str, blob_container: str
) -> None:
    ids = flush_and_read(
        storage_factory,
        database_url,
        120,
        azure_storage_connection_string=azurite,
        blob_container=blob_container,
    )
    assert len(ids) == 120


def test_flusher_thread_ships_by_age(database_url: str, storage_factory: StorageFactory) -> None:
    storage = storage_factory(database_url, blob_flush_max_records=1000, blob_flush_max_age_s=0.3)
    storage.start()
    records: list[PredictionRecord] = spread_records(7)
    for record in records:
        storage.recorder.record(record)
    wait_until(lambda: storage.recorder.flusher.stats.flushed_records >= 7, timeout_s=15)
    assert storage.recorder.flusher.stats.flushed_records == 7
    assert len(storage.blobs.list("features/")) >= 1


def test_flusher_purges_shipped_rows_after_retention(
    database_url: str, storage_factory: StorageFactory
) -> None:
    storage = storage_factory(
        database_url, outbox_retention_s=0.0, outbox_purge_interval_s=0.1, blob_flush_max_age_s=0.1
    )
    storage.start()
    records = spread_records(30)
    for record in records:
        storage.recorder.record(record)
    wait_until(lambda: storage.recorder.flusher.stats.purged_records >= 30, timeout_s=15)
    assert storage.recorder.flusher.stats.purged_records == 30
    with storage.uow_factory() as uow:
        assert uow.session.scalar(select(func.count()).select_from(OutboxEntry)) == 0
        # The predictions stay; only their shipped outbox copies went.
        assert len(uow.predictions.get_many(r.event_id for r in records)) == 30
    window = (BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=5))
    assert sorted(storage.feature_store.read(*window)["event_id"].to_pylist()) == sorted(
        str(r.event_id) for r in records
    )


def test_unshipped_rows_are_never_purged(
    database_url: str, storage_factory: StorageFactory
) -> None:
    storage = storage_factory(database_url, outbox_retention_s=0.0)
    for record in spread_records(5):
        storage.recorder.record(record)  # threads not started: nothing is shipped
    assert storage.recorder.flusher.purge_once() == 0
    assert storage.recorder.flusher.backlog() == 5


def test_background_writes_go_in_chunks_and_miss_nothing(
    database_url: str, storage_factory: StorageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claim, mark-done and purge each go in transactions of ROWS_PER_WRITE rows (so the
    write lock is never held long), yet one batch still takes every row and purge all of them."""
    monkeypatch.setattr("fatigue_guard.storage.recording.outbox.ROWS_PER_WRITE", 7)
    storage = storage_factory(database_url, outbox_retention_s=0.0)
    records = spread_records(30)
    storage.recorder.record_many(records)
    assert storage.recorder.flusher.drain(timeout_s=30)
    assert storage.recorder.flusher.stats.flushed_batches == 1
    assert storage.recorder.flusher.stats.flushed_records == 30
    window = (BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=60))
    assert set(storage.feature_store.read(*window)["event_id"].to_pylist()) == {
        str(r.event_id) for r in records
    }
    assert storage.recorder.flusher.purge_once() == 30
    with storage.uow_factory() as uow:
        assert uow.session.scalar(select(func.count()).select_from(OutboxEntry)) == 0
