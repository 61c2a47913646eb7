"""The group commit's driver-level write: idempotent, committed, and recovers after an error."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from fatigue_guard.storage.recording.prediction_writer import PredictionWriter
from tests.fixtures.services import TcpProxy
from tests.storage.conftest import StorageFactory, prediction_count, spread_records


def test_writes_new_records_once_and_recovers_after_an_error(
    database_url: str, storage_factory: StorageFactory
) -> None:
    storage = storage_factory(database_url, migrate=False)  # no tables yet
    writer = PredictionWriter(storage.engine)
    records = spread_records(30)
    # A driver error comes out as SQLAlchemy's (the recorder tells an outage by its class).
    with pytest.raises(sa_exc.DBAPIError) as raised:
        writer.add_many(records[:10])
    assert not isinstance(raised.value.orig, sa_exc.SQLAlchemyError)
    storage.upgrade()
    # A new connection after the error: the same writer works once the tables exist.
    assert writer.add_many([*records[:10], records[0]]) == {r.event_id for r in records[:10]}
    assert writer.add_many(records[5:30]) == {r.event_id for r in records[10:30]}
    writer.close()
    assert prediction_count(storage) == 30  # committed: another connection sees them
    assert storage.recorder.flusher.backlog() == 30  # one outbox row each
    with storage.uow_factory() as uow:
        stored = uow.predictions.get_many({r.event_id for r in records})
    assert stored == {r.event_id: r for r in records}


@pytest.mark.postgres
def test_a_refused_connection_comes_out_as_sqlalchemys_operational_error(
    postgres_proxy: tuple[TcpProxy, str], storage_factory: StorageFactory
) -> None:
    """The pool raises the driver's own error when opening a connection fails; the recorder
    tells an outage by SQLAlchemy's class, so the writer must translate that one too."""
    proxy, url = postgres_proxy
    storage = storage_factory(url, db_connect_timeout_s=1.0)
    writer = PredictionWriter(storage.engine)
    records = spread_records(4)
    proxy.stop()
    with pytest.raises(sa_exc.OperationalError):
        writer.add_many(records[:2])
    proxy.start()
    assert writer.add_many(records) == {r.event_id for r in records}
    writer.close()
    assert prediction_count(storage) == 4
