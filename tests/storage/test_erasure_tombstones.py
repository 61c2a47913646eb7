"""An erasure reaches the copies still on their way: records that reach SQL after it (a late
retry, a spool replay), a batch being written to the blob store while the erasure runs, and what
training reads later. Records received after the erasure are the user's new data, and are kept.
Spooled records replayed on this replica and another are covered over HTTP, in
tests/serving/test_session_privacy.py."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fatigue_guard.contract.baselines import DayRecord
from fatigue_guard.storage.blob.feature_store import FeatureStore
from fatigue_guard.storage.blob.stores import BlobStore
from fatigue_guard.storage.factory import Storage
from fatigue_guard.storage.recording.outbox import OutboxFlusher
from fatigue_guard.storage.sql.personal_history import LabelRow, MomentRow, PersonalHistoryStore
from fatigue_guard.storage.sql.tables import OutboxEntry, Prediction
from fatigue_guard.storage.sql.tombstones import erased_user_hash
from tests.fixtures.waiting import wait_until
from tests.storage.conftest import BASE_TIME, StorageFactory, make_record

ERASED = "person-zebra-7781"
KEPT = "person-okapi-2290"
WINDOW = (BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=5))


def _sql_users(storage: Storage) -> dict[str, int]:
    with storage.engine.connect() as connection:
        rows = connection.execute(
            select(Prediction.user_id, func.count()).group_by(Prediction.user_id)
        )
        return {user: count for user, count in rows}


def _blob_users(storage: Storage) -> set[str]:
    users: set[str] = set()
    for key in storage.blobs.list("features/"):
        users.update(storage.feature_store.read_key(key)["user_id"].to_pylist())
    return users


def test_records_the_tombstone_covers_are_never_stored_and_later_ones_are(
    storage_factory: StorageFactory, tmp_path: Path
) -> None:
    storage = storage_factory(f"sqlite:///{tmp_path / 'fatigue-guard.db'}")
    before = make_record(ERASED)
    storage.recorder.record(before)
    erasure = storage.erase_user(ERASED)
    assert erasure.counts.predictions == 1

    # Received before the erasure, arriving after it (a late retry, a replay): dropped, by the
    # group-commit writer and by the batch path alike. Received after it: new data, stored.
    late = [replace(make_record(ERASED), received_at=erasure.tombstoned_at) for _ in range(3)]
    storage.recorder.record(late[0])
    storage.recorder.record_many(late[1:])
    fresh = make_record(ERASED)
    assert fresh.received_at > erasure.tombstoned_at
    storage.recorder.record(fresh)
    storage.recorder.record_many([make_record(KEPT)])

    assert _sql_users(storage) == {ERASED: 1, KEPT: 1}
    with storage.engine.connect() as connection:
        kept = connection.execute(
            select(Prediction.event_id).where(Prediction.user_id == ERASED)
        ).scalar_one()
    assert kept == fresh.event_id
    assert storage.recorder.drain(timeout_s=30)
    frame = storage.read_live_dataset(*WINDOW)
    assert sorted(frame["event_id"]) == sorted([str(fresh.event_id), *_event_ids(storage, KEPT)])

    again = storage.erase_user(ERASED)  # erasing again moves the tombstone forward
    assert again.counts.predictions == 1 and again.tombstoned_at > erasure.tombstoned_at
    storage.recorder.record(replace(fresh, event_id=uuid.uuid4()))
    assert _sql_users(storage) == {KEPT: 1}


def _event_ids(storage: Storage, user_id: str) -> list[str]:
    with storage.engine.connect() as connection:
        ids = connection.execute(select(Prediction.event_id).where(Prediction.user_id == user_id))
        return [str(event_id) for event_id in ids.scalars()]


class _HeldWrites:
    """The real blob store, whose first write of a batch waits until the test lets it go."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self.writing = threading.Event()
        self.release = threading.Event()

    def put(self, key: str, data: bytes) -> None:
        self.writing.set()
        assert self.release.wait(30)
        self._blobs.put(key, data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._blobs, name)


@pytest.mark.postgres
def test_a_batch_being_written_during_the_erasure_does_not_bring_the_user_back(
    postgres_url: str, storage_factory: StorageFactory
) -> None:
    storage = storage_factory(postgres_url)
    storage.recorder.record_many([make_record(ERASED), make_record(KEPT)])
    held = _HeldWrites(storage.blobs)
    flusher = OutboxFlusher(storage.uow_factory, FeatureStore(held))  # type: ignore[arg-type]
    shipping = threading.Thread(target=flusher.flush_once, kwargs={"force": True})
    shipping.start()
    assert held.writing.wait(30)  # the batch (both users) is read and its write under way

    answered = threading.Event()
    erasing = threading.Thread(target=lambda: (storage.erase_user(ERASED), answered.set()))
    erasing.start()
    wait_until(lambda: _outbox_count(storage) == 1, timeout_s=10)  # SQL part done
    assert not answered.wait(0.3)  # the erasure waits for the write under way
    held.release.set()
    shipping.join(30)
    erasing.join(30)
    assert answered.is_set()

    assert _blob_users(storage) == {KEPT}
    assert set(storage.read_live_dataset(*WINDOW)["user_id"]) == {KEPT}
    late = replace(make_record(ERASED), received_at=datetime.now(UTC) - timedelta(seconds=5))
    storage.recorder.record(late)  # the group-commit writer consults the tombstone too
    assert _sql_users(storage) == {KEPT: 1}


def _outbox_count(storage: Storage) -> int:
    with storage.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(OutboxEntry)).scalar_one())


def test_training_data_skips_rows_an_unfinished_erasure_left_in_the_blob_store(
    storage_factory: StorageFactory, tmp_path: Path
) -> None:
    storage = storage_factory(f"sqlite:///{tmp_path / 'fatigue-guard.db'}")
    rows = [make_record(ERASED), make_record(KEPT)]
    storage.recorder.record_many(rows)
    storage.erase_user(ERASED)
    # What an erasure whose blob rewrite failed leaves behind, until it is run again.
    storage.feature_store.write_batch("left-behind", rows)

    frame = storage.read_live_dataset(*WINDOW)

    assert list(frame["user_id"]) == [KEPT]
    # The tombstone names nobody in clear.
    with storage.engine.connect() as connection:
        names = connection.exec_driver_sql("SELECT user_hash FROM erased_users").scalars().all()
    assert names == [erased_user_hash(ERASED)] and ERASED not in names[0]


def test_personal_history_queued_before_the_erasure_is_not_written_after_it(
    storage_factory: StorageFactory, tmp_path: Path
) -> None:
    storage = storage_factory(f"sqlite:///{tmp_path / 'fatigue-guard.db'}")
    history = PersonalHistoryStore(storage.uow_factory)
    night = DayRecord(sleep_h=7.0, resting_hr_bpm=58.0)

    def moment(user: str, day: date) -> MomentRow:
        return MomentRow(user, uuid.uuid4(), day, day, night, server_computed=0)

    queued = [moment(ERASED, date(2025, 3, d)) for d in (1, 2)]  # taken by the API, not written
    queued_label = LabelRow(ERASED, date(2025, 3, 1), positive=True)
    erasure = storage.erase_user(ERASED)
    assert all(m.queued_at <= erasure.tombstoned_at for m in queued)

    # The writer's batch lands after the erasure: the erased person's part is dropped, the rest
    # (another person, and what the erased person sends afterwards) is written.
    later = moment(ERASED, date(2025, 3, 3))
    history.add([*queued, moment(KEPT, date(2025, 3, 1)), later], [queued_label])

    assert sorted(history.load(ERASED).days) == [date(2025, 3, 3)]
    assert sorted(history.load(KEPT).days) == [date(2025, 3, 1)]
