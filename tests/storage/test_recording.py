"""Recording predictions, sync batches, feedback and device keys against both DB backends."""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from fatigue_guard.storage.factory import Storage
from fatigue_guard.storage.records import FeedbackRecord
from fatigue_guard.storage.sql.repository import PredictionNotFound
from fatigue_guard.storage.sql.tables import Device, OutboxEntry, Prediction
from tests.storage.conftest import make_record


def count(storage: Storage, model: type) -> int:
    with storage.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def test_record_is_idempotent_on_event_id(storage: Storage) -> None:
    first = make_record(probability=0.81)
    stored = storage.recorder.record(first)
    assert stored == first

    # A retry with the same event_id but a different answer: the first answer wins.
    retry = dataclasses.replace(first, fatigue_probability=0.1, alert=False, model_version="8")
    again = storage.recorder.record(retry)

    assert again.fatigue_probability == pytest.approx(0.81)
    assert again.alert is True
    assert again.model_version == "7"
    assert again.features == first.features
    assert count(storage, Prediction) == 1
    assert count(storage, OutboxEntry) == 1


def test_get_returns_the_stored_prediction(storage: Storage) -> None:
    record = make_record()
    storage.recorder.record(record)
    got = storage.recorder.get(record.event_id)
    assert got is not None
    assert got.event_id == record.event_id
    assert got.measured_at == record.measured_at
    assert got.measured_at.tzinfo is not None
    assert got.device_model == "Pixel 8"
    assert storage.recorder.get(uuid.uuid4()) is None


def test_concurrent_records_of_one_event_store_one_row(storage: Storage) -> None:
    record = make_record()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: storage.recorder.record(record), range(16)))
    assert {a.event_id for a in answers} == {record.event_id}
    assert count(storage, Prediction) == 1
    assert count(storage, OutboxEntry) == 1


def test_sync_batch_counts_accepted_and_duplicates(storage: Storage) -> None:
    batch = [make_record(served_by="edge", seed=i) for i in range(5)]
    first = storage.recorder.record_many(batch)
    assert sorted(first.accepted) == sorted(r.event_id for r in batch)
    assert first.duplicates == []

    # The same batch again (a device retrying), plus one new item and an in-batch repeat.
    extra = make_record(served_by="edge")
    second = storage.recorder.record_many([*batch, extra, extra])
    assert second.accepted == [extra.event_id]
    assert sorted(second.duplicates) == sorted([*(r.event_id for r in batch), extra.event_id])
    assert count(storage, Prediction) == 6
    stored = storage.recorder.get(extra.event_id)
    assert stored is not None and stored.served_by == "edge"


def feedback_for(event_id: uuid.UUID, user_id: str, label: bool = True) -> FeedbackRecord:
    return FeedbackRecord(
        event_id=event_id,
        user_id=user_id,
        fatigue_event=label,
        source="self_report",
        observed_at=datetime(2025, 3, 2, 8, tzinfo=UTC),
    )


def test_feedback_joins_to_the_users_own_prediction(storage: Storage) -> None:
    record = make_record("alice")
    storage.recorder.record(record)

    stored, created = storage.record_feedback(feedback_for(record.event_id, "alice", True))
    assert created and stored.fatigue_event is True

    # Idempotent: a second report changes nothing and returns the first.
    again, created_again = storage.record_feedback(feedback_for(record.event_id, "alice", False))
    assert not created_again
    assert again.fatigue_event is True

    # Someone else's prediction and an unknown one look the same: not found.
    with pytest.raises(PredictionNotFound):
        storage.record_feedback(feedback_for(record.event_id, "mallory"))
    with pytest.raises(PredictionNotFound):
        storage.record_feedback(feedback_for(uuid.uuid4(), "alice"))


def test_live_dataset_carries_labels_where_present(storage: Storage) -> None:
    labelled, unlabelled = make_record("alice", seed=1), make_record("alice", seed=2)
    edge = make_record("bob", served_by="edge", seed=3)
    storage.recorder.record(labelled)
    storage.recorder.record(unlabelled)
    storage.recorder.record_many([edge])
    storage.record_feedback(feedback_for(labelled.event_id, "alice", False))
    assert storage.recorder.drain(timeout_s=20)

    start = labelled.measured_at - timedelta(days=1)
    frame = storage.read_live_dataset(start, start + timedelta(days=2))
    by_id = frame.set_index("event_id")
    assert len(frame) == 3
    assert not bool(by_id.loc[str(labelled.event_id), "fatigue_event"])
    assert by_id["fatigue_event"].isna().sum() == 2
    assert set(by_id["served_by"]) == {"server", "edge"}
    only = storage.read_live_dataset(start, start + timedelta(days=2), labelled_only=True)
    assert list(only["event_id"]) == [str(labelled.event_id)]


def test_device_keys_are_stored_hashed_and_verify(storage: Storage) -> None:
    issued = storage.create_device_key("alice", label="phone")
    assert issued.plaintext.startswith("fgk_")

    assert storage.verify_device_key(issued.plaintext) == "alice"
    assert storage.verify_device_key(issued.plaintext + "x") is None
    assert storage.verify_device_key("fgk_" + issued.key_id + "_wrong") is None
    assert storage.verify_device_key("garbage") is None

    # Neither the key nor its secret part appears anywhere in the devices table.
    secret = issued.plaintext.split("_", 2)[2]
    with storage.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM devices")).all()
    dump = repr(rows)
    assert issued.plaintext not in dump and secret not in dump
    assert count(storage, Device) == 1

    from fatigue_guard.storage.services import revoke_device_key

    assert revoke_device_key(storage.uow_factory, issued.key_id)
    assert storage.verify_device_key(issued.plaintext) is None


def test_job_lock_admits_one_holder_until_expiry(storage: Storage) -> None:
    with storage.uow_factory() as uow:
        assert uow.locks.try_acquire("retrain", "replica-a", timedelta(minutes=5))
        uow.commit()
    with storage.uow_factory() as uow:
        assert not uow.locks.try_acquire("retrain", "replica-b", timedelta(minutes=5))
        uow.commit()
    with storage.uow_factory() as uow:
        uow.locks.release("retrain", "replica-a")
        uow.commit()
    with storage.uow_factory() as uow:
        assert uow.locks.try_acquire("retrain", "replica-b", timedelta(seconds=-1))  # expired
        uow.commit()
    with storage.uow_factory() as uow:
        assert uow.locks.try_acquire("retrain", "replica-c", timedelta(minutes=5))
        uow.commit()
