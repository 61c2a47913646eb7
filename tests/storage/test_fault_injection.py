"""Outages at the storage level: blob store down mid-stream, SQL DB unreachable, crashes.

Every record handed to the recorder must end up exactly once in SQL and in the blob store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from fatigue_guard.storage.blob.feature_store import FeatureStore
from fatigue_guard.storage.recording.outbox import ROWS_PER_WRITE, OutboxFlusher
from fatigue_guard.storage.recording.spool import Spool
from fatigue_guard.storage.records import PredictionRecord
from fatigue_guard.storage.sql.repository import OutboxRepository
from fatigue_guard.storage.sql.tables import OutboxEntry
from tests.fixtures.services import AzuriteFactory, TcpProxy
from tests.fixtures.waiting import wait_until
from tests.storage.conftest import (
    BASE_TIME,
    StorageFactory,
    prediction_count,
    spread_records,
)


def raw_rows_and_ids(store: FeatureStore) -> tuple[int, set[str]]:
    """Rows across all batch files without dedup, and the distinct event_ids among them."""
    table = store.read(BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=5))
    raw = sum(len(FeatureStore(store.blobs).read_key(key)) for key in store.blobs.list("features/"))
    return raw, set(table["event_id"].to_pylist())


def ids(records: list[PredictionRecord]) -> set[str]:
    return {str(r.event_id) for r in records}


@pytest.mark.azurite
@pytest.mark.slow
def test_azurite_outage_mid_stream_loses_and_duplicates_nothing(
    database_url: str, storage_factory: StorageFactory, azurite_factory: AzuriteFactory
) -> None:
    azurite = azurite_factory()
    storage = storage_factory(
        database_url,
        azure_storage_connection_string=azurite.connection_string,
        blob_container="faults",
        blob_flush_max_records=40,
    )
    storage.start()
    records = spread_records(300)

    for record in records[:100]:
        storage.recorder.record(record)
    azurite.stop()
    for record in records[100:200]:
        assert storage.recorder.record(record).event_id == record.event_id
    time.sleep(2.0)  # let the flusher hit the dead endpoint and back off
    azurite.start()
    for record in records[200:]:
        storage.recorder.record(record)

    assert storage.recorder.drain(timeout_s=60)
    assert storage.recorder.stats().flush_failures > 0, "the outage was never noticed"
    raw, distinct = raw_rows_and_ids(storage.feature_store)
    assert distinct == ids(records)
    assert raw == len(records)  # no duplicate rows in the store, not just after dedup
    assert prediction_count(storage) == len(records)


@pytest.mark.postgres
@pytest.mark.slow
def test_unreachable_database_spools_then_replays_exactly_once(
    postgres_proxy: tuple[TcpProxy, str], storage_factory: StorageFactory
) -> None:
    proxy, url = postgres_proxy
    storage = storage_factory(url)
    storage.start()
    records = spread_records(250)

    for record in records[:50]:
        storage.recorder.record(record)
    proxy.stop()
    started = time.perf_counter()
    for record in records[50:200]:
        assert storage.recorder.record(record) == record  # answered while the DB is down
    outage_latency = (time.perf_counter() - started) / 150
    assert storage.recorder.stats().spooled_total == 150
    assert not storage.recorder.stats().db_available
    # A client retry during the outage gets the same answer, and nothing extra is stored.
    assert storage.recorder.record(records[60]) == records[60]
    assert storage.recorder.get(records[60].event_id) == records[60]
    sync = storage.recorder.record_many(records[200:])
    assert sync.spooled and len(sync.accepted) == 50
    proxy.start()

    drained = storage.recorder.drain(timeout_s=20)
    assert drained
    assert prediction_count(storage) == len(records)
    assert storage.recorder.spool.replayed_total == 200
    assert not storage.recorder.spool.has_pending()
    raw, distinct = raw_rows_and_ids(storage.feature_store)
    assert distinct == ids(records) and raw == len(records)
    assert outage_latency < 0.5, f"spooling took {outage_latency * 1000:.0f} ms per record"


OUTAGES: dict[str, Callable[[TcpProxy], None]] = {
    "refused": TcpProxy.stop,
    "reset": TcpProxy.reset,
    "timeout": TcpProxy.blackhole,
}


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("outage", list(OUTAGES))
def test_every_kind_of_unreachable_database_spools(
    postgres_proxy: tuple[TcpProxy, str], storage_factory: StorageFactory, outage: str
) -> None:
    """Whether the server refuses, resets or never answers, on a connection in use or on a new
    one, every record is answered from the spool and stored exactly once afterwards."""
    proxy, url = postgres_proxy
    # The replayer would keep probing the DB and hold the gate shut; here only records probe it.
    storage = storage_factory(url, db_connect_timeout_s=1.0, spool_replay_interval_s=3600)
    storage.start()
    records = spread_records(90)
    recorder = storage.recorder
    for record in records[:30]:
        assert recorder.record(record) == record  # the writer now holds an open connection

    OUTAGES[outage](proxy)
    for record in records[30:45]:  # the open connection fails
        assert recorder.record(record) == record
    assert not recorder.stats().db_available
    # Once the recorder tries the DB again, it opens a new connection, which fails too.
    wait_until(lambda: recorder.stats().db_available, timeout_s=5)
    assert recorder.stats().db_available, "the recorder never tried the database again"
    for record in records[45:60]:
        assert recorder.record(record) == record
    wait_until(lambda: recorder.stats().db_available, timeout_s=5)
    sync = recorder.record_many(records[60:])
    assert sync.spooled and len(sync.accepted) == 30
    assert recorder.stats().spooled_total == 60
    proxy.start()

    assert recorder.drain(timeout_s=90)
    assert prediction_count(storage) == len(records)
    raw, distinct = raw_rows_and_ids(storage.feature_store)
    assert distinct == ids(records) and raw == len(records)


def test_spool_left_by_a_dead_process_is_replayed_once(
    database_url: str, storage_factory: StorageFactory
) -> None:
    storage = storage_factory(database_url)
    records = spread_records(30)
    # Another process spooled these and died before replaying (its lock died with it).
    orphan = Spool(storage.settings.spool_dir)
    orphan.append(records[:20])
    orphan.append(records[10:])  # overlapping lines: replay must still store each once
    orphan.close()
    (storage.settings.spool_dir / "spool-torn.jsonl").write_text('{"event_id": "tor')

    storage.start()
    assert storage.recorder.drain(timeout_s=30)
    assert prediction_count(storage) == 30
    assert not storage.recorder.spool.has_pending()
    storage.recorder.replay_spool()  # nothing left to replay twice
    assert prediction_count(storage) == 30
    raw, distinct = raw_rows_and_ids(storage.feature_store)
    assert distinct == ids(records) and raw == 30


def test_outbox_survives_a_restart(database_url: str, storage_factory: StorageFactory) -> None:
    """Rows recorded but not yet flushed are shipped by the next process."""
    first = storage_factory(database_url, blob_flush_max_records=10_000, blob_flush_max_age_s=3600)
    records = spread_records(40)
    first.recorder.record_many(records)
    first.close()  # "crash": no stop(), nothing flushed

    second = storage_factory(database_url, migrate=False)
    assert second.recorder.drain(timeout_s=30)
    raw, distinct = raw_rows_and_ids(second.feature_store)
    assert distinct == ids(records) and raw == 40


@pytest.mark.parametrize("settled_chunks", [0, 1], ids=["none-done", "partly-done"])
def test_claimed_batch_is_rewritten_under_the_same_key(
    database_url: str,
    storage_factory: StorageFactory,
    monkeypatch: pytest.MonkeyPatch,
    settled_chunks: int,
) -> None:
    """Crash after the blob write but before the whole batch is marked done (which takes
    several short transactions): the retry rewrites the same file with every row of the batch,
    never duplicates and never drops the rows already marked done."""
    storage = storage_factory(database_url, blob_flush_max_records=10_000)
    records = spread_records(ROWS_PER_WRITE * 2 + 25)
    storage.recorder.record_many(records)

    class Crash(RuntimeError):
        pass

    real_mark_done = OutboxRepository.mark_done
    calls = 0

    def crash(self: OutboxRepository, batch_id: str, limit: int | None = None) -> int:
        nonlocal calls
        calls += 1
        if calls > settled_chunks:
            raise Crash
        return real_mark_done(self, batch_id, limit)

    with monkeypatch.context() as patch:
        patch.setattr(OutboxRepository, "mark_done", crash)
        with pytest.raises(Crash):
            storage.recorder.flusher.flush_once(force=True)
    with storage.uow_factory() as uow:
        done = uow.session.scalar(
            select(func.count()).select_from(OutboxEntry).where(OutboxEntry.status == "done")
        )
    assert done == settled_chunks * ROWS_PER_WRITE
    keys_after_crash = storage.blobs.list("features/")
    assert keys_after_crash

    # A new process (fresh flusher) after the claimer's lease lapsed retries the same batch.
    with storage.uow_factory() as uow:
        uow.session.execute(update(OutboxEntry).values(next_attempt_at=BASE_TIME))
        uow.commit()
    fresh = OutboxFlusher(storage.uow_factory, storage.feature_store)
    assert fresh.drain(timeout_s=30)
    assert storage.blobs.list("features/") == keys_after_crash
    raw, distinct = raw_rows_and_ids(storage.feature_store)
    assert distinct == ids(records) and raw == len(records)
