"""The driver-level bulk insert stores what SQLAlchemy's own insert would, on both backends."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Table, insert, select

from fatigue_guard.storage.factory import Storage
from fatigue_guard.storage.records import prediction_to_json
from fatigue_guard.storage.sql import bulk_insert
from fatigue_guard.storage.sql.repository import _prediction_row
from fatigue_guard.storage.sql.tables import OUTBOX_PENDING, OutboxEntry, Prediction, utcnow
from tests.storage.conftest import make_record

PREDICTIONS: Table = Prediction.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxEntry.__table__  # type: ignore[assignment]


def _outbox_row(event_id: uuid.UUID, record_json: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    return {
        "event_id": event_id,
        "user_id": record_json["user_id"],
        "payload": record_json,
        "status": OUTBOX_PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def _raw_row(storage: Storage, table: Table, key: str, value: Any) -> dict[str, Any]:
    """The row as the driver hands it back: the stored representation, not the ORM's."""
    with storage.engine.connect() as connection:
        processed = table.c[key].type.dialect_impl(connection.dialect)
        bind = processed.bind_processor(connection.dialect)
        stored_key = bind(value) if bind else value
        names = [c.name for c in table.columns]
        mark = bulk_insert._placeholder(connection.dialect)
        result = connection.exec_driver_sql(
            f"SELECT {', '.join(names)} FROM {table.name} WHERE {key} = {mark}", (stored_key,)
        )
        row = result.one()
    return dict(zip(names, row, strict=True))


def test_stored_representation_matches_sqlalchemy_insert(storage: Storage) -> None:
    ours, theirs = uuid.uuid4(), uuid.uuid4()
    record = make_record(seed=3)
    row = _prediction_row(record)
    payload = prediction_to_json(record)
    with storage.uow_factory() as uow:
        session = uow.session
        session.execute(insert(PREDICTIONS), [{**row, "event_id": theirs}])
        session.execute(insert(OUTBOX), [_outbox_row(theirs, payload)])
        assert bulk_insert.insert_ignoring_conflicts(
            session, PREDICTIONS, [{**row, "event_id": ours}], "event_id"
        ) == {ours}
        assert bulk_insert.insert_ignoring_conflicts(
            session, OUTBOX, [_outbox_row(ours, payload)], "event_id"
        ) == {ours}
        uow.commit()

    for table, differing in ((PREDICTIONS, {"event_id"}), (OUTBOX, {"event_id", "id"})):
        a = _raw_row(storage, table, "event_id", ours)
        b = _raw_row(storage, table, "event_id", theirs)
        for column in set(a) - differing - {"next_attempt_at", "created_at"}:
            # JSON text may differ in whitespace only between serialisers: compare parsed.
            if column == "payload" and isinstance(a[column], str):
                assert json.loads(a[column]) == json.loads(b[column])
            else:
                assert a[column] == b[column], column
            assert type(a[column]) is type(b[column]), column
    # And the ORM reads our row back as the same record.
    with storage.uow_factory() as uow:
        got = uow.predictions.get(ours)
    assert got is not None
    assert got.measured_at == record.measured_at
    assert got.features == record.features


def test_returns_only_new_keys_across_chunks(storage: Storage) -> None:
    records = [make_record(f"user-{i % 7}", seed=i) for i in range(bulk_insert.CHUNK_ROWS + 37)]
    rows = [_prediction_row(r) for r in records]
    with storage.uow_factory() as uow:
        first = bulk_insert.insert_ignoring_conflicts(
            uow.session, PREDICTIONS, rows[:100], "event_id"
        )
        uow.commit()
    assert first == {r.event_id for r in records[:100]}
    with storage.uow_factory() as uow:
        second = bulk_insert.insert_ignoring_conflicts(uow.session, PREDICTIONS, rows, "event_id")
        uow.commit()
    assert second == {r.event_id for r in records[100:]}
    assert all(isinstance(key, uuid.UUID) for key in second)
    with storage.uow_factory() as uow:
        stored = uow.session.scalars(select(PREDICTIONS.c.event_id)).all()
    assert sorted(map(str, stored)) == sorted(str(r.event_id) for r in records)


def test_nothing_is_written_without_commit(storage: Storage) -> None:
    row = _prediction_row(make_record(seed=9))
    with storage.uow_factory() as uow:
        assert bulk_insert.insert_ignoring_conflicts(uow.session, PREDICTIONS, [row], "event_id")
        # leaving without commit rolls back, like any other write in a unit of work
    with storage.uow_factory() as uow:
        assert uow.predictions.get(row["event_id"]) is None
