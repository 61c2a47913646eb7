"""Erasing a user removes them from SQL and from the rewritten Parquet files, nobody else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from fatigue_guard.storage.records import FeedbackRecord
from fatigue_guard.storage.sql.tables import Device, Feedback, OutboxEntry, Prediction
from tests.storage.conftest import BASE_TIME, StorageFactory, make_record


@pytest.mark.parametrize("blob", ["local", pytest.param("azurite", marks=pytest.mark.azurite)])
def test_erase_user_removes_sql_rows_and_blob_records(
    database_url: str,
    storage_factory: StorageFactory,
    blob: str,
    request: pytest.FixtureRequest,
    blob_container: str,
) -> None:
    overrides: dict[str, object] = {}
    if blob == "azurite":
        overrides = {
            "azure_storage_connection_string": request.getfixturevalue("azurite"),
            "blob_container": blob_container,
        }
    storage = storage_factory(database_url, **overrides)
    alice = [make_record("alice", measured_at=BASE_TIME + timedelta(hours=9 * i)) for i in range(6)]
    bob = [make_record("bob", measured_at=BASE_TIME + timedelta(hours=9 * i)) for i in range(4)]
    storage.recorder.record_many(alice + bob)
    assert storage.recorder.drain(timeout_s=30)
    late = make_record("alice")  # still in the outbox at erasure time
    storage.recorder.record(late)
    storage.create_device_key("alice")
    storage.record_feedback(
        FeedbackRecord(alice[0].event_id, "alice", True, "self_report", BASE_TIME)
    )
    files_before = storage.blobs.list("features/")

    counts = storage.erase_user("alice").counts

    assert counts.predictions == 7
    assert counts.feedback == 1
    assert counts.devices == 1
    assert counts.outbox == 7
    assert counts.blob_records == 6
    assert counts.blob_files >= 1
    with storage.engine.connect() as connection:
        for model in (Prediction, Feedback, OutboxEntry, Device):
            left = connection.execute(
                select(func.count()).select_from(model).where(model.user_id == "alice")
            ).scalar_one()
            assert left == 0, model.__tablename__
    window = (BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=5))
    table = storage.feature_store.read(*window)
    assert set(table["user_id"].to_pylist()) == {"bob"}
    assert table.num_rows == 4
    for key in storage.blobs.list("features/"):
        assert "alice" not in storage.feature_store.read_key(key)["user_id"].to_pylist()
    assert set(storage.blobs.list("features/")) <= set(files_before)
    assert storage.recorder.drain(timeout_s=10)  # nothing of alice's is shipped later
    assert "alice" not in storage.feature_store.read(*window)["user_id"].to_pylist()
