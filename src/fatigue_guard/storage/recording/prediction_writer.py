"""The group commit's write: new predictions and their outbox rows, straight through the driver.

Why not a unit of work: a group commit is two statements and a commit, and a session around them
(session and connection set-up, one execution context per statement, the pool's checkout and
reset) costs more than SQLite's own work. A two-record group commit on SQLite with
``synchronous=FULL``, fsync included, takes twice the CPU through a session as through the
driver (``benchmarks/group_commit.py``: 0.57 against 0.29 ms, 0.76 against 0.45 ms wall). The
group commit is the one write on every request's path, so it gets a DB-API connection of its
own, kept open, and the statements
:func:`~fatigue_guard.storage.sql.bulk_insert.driver_statements` builds (the same ones, and the same
stored values, as :meth:`~fatigue_guard.storage.sql.repository.PredictionRepository.add_many`).

It takes its turn on the SQLite writer lock like every writer of the process, and a driver
error comes out as SQLAlchemy's exception for it (so an unreachable database is an
``OperationalError`` here too, and the recorder spools). After any error the connection is
dropped and the next call opens a new one.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import PoolProxiedConnection

from fatigue_guard.storage.records import PredictionRecord
from fatigue_guard.storage.sql.bulk_insert import driver_statements
from fatigue_guard.storage.sql.repository import (
    OUTBOX,
    PREDICTIONS,
    first_of_each_event,
    outbox_rows,
    prediction_rows,
)
from fatigue_guard.storage.sql.tombstones import not_erased_via_cursor
from fatigue_guard.storage.sql.writer_lock import WriterLock


class PredictionWriter:
    """Insert predictions and their outbox rows in one committed transaction; see the module
    docstring. Thread-safe (one write at a time)."""

    def __init__(self, engine: Engine, write_lock: WriterLock | None = None) -> None:
        self._engine = engine
        # Writers of one process take turns (SQLite); without a shared lock, one of our own.
        self._lock: WriterLock | threading.Lock = write_lock or threading.Lock()
        self._connection: PoolProxiedConnection | None = None

    def add_many(self, records: Sequence[PredictionRecord]) -> set[uuid.UUID]:
        """Store the new ones of ``records`` (the first of each event_id wins, as everywhere)
        and commit; return the event_ids that were new."""
        unique = first_of_each_event(records)
        if not unique:
            return set()
        dialect = self._engine.dialect
        with self._lock:
            connection, self._connection = self._connection, None  # until this write succeeds
            try:
                # Opening the connection is inside the try: the pool raises the driver's own
                # error when the server refuses, and that must come out as SQLAlchemy's too.
                if connection is None:
                    connection = self._engine.raw_connection()
                cursor = connection.cursor()
                try:
                    # Records an erasure tombstone covers are never stored (see tombstones).
                    unique = not_erased_via_cursor(cursor, dialect, unique)
                    inserted = set[Any]()
                    for statement, params, convert in driver_statements(
                        dialect, PREDICTIONS, prediction_rows(unique), "event_id", returning=True
                    ):
                        cursor.execute(statement, params)
                        inserted.update(
                            key if convert is None else convert(key) for (key,) in cursor.fetchall()
                        )
                    # Only new predictions get an outbox row: none can conflict.
                    for statement, params, _ in driver_statements(
                        dialect, OUTBOX, outbox_rows(unique, inserted), "event_id", returning=False
                    ):
                        cursor.execute(statement, params)
                finally:
                    cursor.close()
                connection.commit()
            except Exception as exc:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.invalidate()
                dbapi_error = dialect.loaded_dbapi.Error
                if isinstance(exc, dbapi_error):
                    raise sa_exc.DBAPIError.instance(
                        None, None, exc, dbapi_error, dialect=dialect
                    ) from exc
                raise
            self._connection = connection
        return inserted

    def close(self) -> None:
        """Give the connection back to the pool."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
