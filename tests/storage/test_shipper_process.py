"""The flusher's batch shipping in a process of its own: same files; survives being killed."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from fatigue_guard.storage.factory import Storage, build_storage
from fatigue_guard.storage.recording.outbox import OutboxFlusher, ShippingStopped
from fatigue_guard.storage.recording.shipper_process import ShipperProcess, ShipperUnavailable
from tests.fixtures.services import TcpProxy
from tests.storage.conftest import BASE_TIME, StorageFactory, spread_records


@pytest.fixture
def shipped(
    database_url: str, storage_factory: StorageFactory
) -> tuple[Storage, OutboxFlusher, ShipperProcess]:
    """A storage whose flusher ships through a ShipperProcess (as in the recorder process)."""
    migrated = storage_factory(database_url)
    shipper = ShipperProcess(migrated.settings)
    storage = build_storage(migrated.settings, shipper=shipper)
    yield storage, storage.recorder.flusher, shipper
    shipper.close()
    storage.close()


def _stored_event_ids(storage: Storage) -> list[str]:
    window = (BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=5))
    return sorted(str(e) for e in storage.feature_store.read(*window)["event_id"].to_pylist())


def test_batches_reach_the_store_through_the_shipper_process(
    shipped: tuple[Storage, OutboxFlusher, ShipperProcess],
) -> None:
    storage, flusher, shipper = shipped
    records = spread_records(120)
    storage.recorder.record_many(records)
    assert flusher.drain(timeout_s=60)
    assert shipper.pid is not None and shipper.pid != os.getpid()
    assert _stored_event_ids(storage) == sorted(str(r.event_id) for r in records)
    shipper.close()
    assert shipper.pid is None


def test_a_killed_shipper_is_replaced_and_its_batch_is_retried_once(
    shipped: tuple[Storage, OutboxFlusher, ShipperProcess],
) -> None:
    storage, flusher, shipper = shipped
    first = spread_records(30)
    storage.recorder.record_many(first)
    assert flusher.flush_once(force=True) == 30
    pid = shipper.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    second = spread_records(50)[30:]
    storage.recorder.record_many(second)
    # The claim is made, the dead shipper is noticed: the batch stays claimed for a retry.
    with pytest.raises(ShipperUnavailable):
        flusher.flush_once(force=True)
    assert flusher.backlog() == 20
    assert flusher.flush_once(force=True) == 20  # a new shipper, the same batch
    assert shipper.pid not in (None, pid)
    assert flusher.backlog() == 0
    assert _stored_event_ids(storage) == sorted(str(r.event_id) for r in first + second)


def test_a_store_that_refuses_the_write_backs_the_batch_off(
    shipped: tuple[Storage, OutboxFlusher, ShipperProcess],
) -> None:
    """The write error is the shipper process's, the back-off and retry the flusher's."""
    storage, flusher, _ = shipped
    before = spread_records(10)
    storage.recorder.record_many(before)
    assert flusher.flush_once(force=True) == 10
    # A file where the feature folder should be: no write under it can succeed, even as root.
    features = storage.settings.local_blob_root / "features"
    features.rename(features.with_name("features-aside"))
    features.write_text("in the way")
    after = spread_records(25)[10:]
    storage.recorder.record_many(after)
    assert flusher.flush_once(force=True) == 0
    assert flusher.stats.flush_failures == 1
    assert flusher.stats.last_error is not None
    assert flusher.stats.last_error.split(":")[0].endswith("Error")
    assert flusher.backlog() == 15
    features.unlink()
    features.with_name("features-aside").rename(features)
    assert flusher.drain(timeout_s=60)
    assert _stored_event_ids(storage) == sorted(str(r.event_id) for r in before + after)


@pytest.mark.slow
@pytest.mark.azurite
def test_a_stopping_recorder_waits_for_its_shipper_until_its_deadline_only(
    tmp_path: Path,
    storage_factory: StorageFactory,
    azurite_proxy: tuple[TcpProxy, str],
    blob_container: str,
) -> None:
    """A blob store that never answers holds the shipper up (a proxy that accepts connections
    and never replies); the stop's deadline ends the wait, and the batch stays in the outbox."""
    proxy, azurite = azurite_proxy
    migrated = storage_factory(
        f"sqlite:///{tmp_path / 'fg.db'}",
        azure_storage_connection_string=azurite,
        blob_container=blob_container,
    )
    shipper = ShipperProcess(migrated.settings)
    storage = build_storage(migrated.settings, shipper=shipper)
    try:
        storage.recorder.record_many(spread_records(30))
        proxy.blackhole()
        raised: list[BaseException] = []

        def ship() -> None:
            try:
                storage.recorder.flusher.flush_once(force=True)
            except Exception as exc:
                raised.append(exc)

        shipping = threading.Thread(target=ship)
        shipping.start()
        time.sleep(0.5)  # the call waits for the shipper (starting, then held by the store)
        started = time.monotonic()
        shipper.stop_waiting_at(started + 1.0)  # the stop begins while the call waits
        shipping.join(30)
        waited = time.monotonic() - started
        assert len(raised) == 1 and isinstance(raised[0], ShippingStopped), raised
        assert 0.9 < waited < 3.0, f"waited {waited:.1f} s for a deadline 1 s away"
        assert shipper.pid is None  # killed, not left behind
        with pytest.raises(ShippingStopped):  # past the deadline: no new shipper
            storage.recorder.flusher.flush_once(force=True)
        assert shipper.pid is None
        started = time.monotonic()
        assert not storage.recorder.flusher.drain(timeout_s=30)
        assert time.monotonic() - started < 5, "a stopped shipper's drain waited for nothing"
        assert storage.recorder.flusher.backlog() == 30  # kept for the next start
        # ...and handed back: the next start ships it at once instead of waiting out the lease.
        proxy.stop()
        proxy.start()  # the store answers again
        successor = build_storage(migrated.settings)
        assert successor.recorder.flusher.flush_once() == 30
        assert successor.recorder.flusher.backlog() == 0
    finally:
        shipper.close()
        storage.close()
