"""Erasure tombstones, and the fences that keep writes racing an erasure from bringing data back.

An erasure deletes a user's rows, but copies of their records may still be on their way: in a
replica's spool while the database was down, or in an outbox batch a flusher has read and is
writing to the blob store. So the erasure also leaves a tombstone (the user's salted hash and the
time), and every path that stores records consults it: a record of a tombstoned user received at
or before the erasure is dropped, whichever replica replays it and however late.

Consulting a table is not enough against a write already under way, so two fences order writers
against the eraser:

- the *recording* fence, taken inside every transaction that inserts predictions: PostgreSQL
  takes a shared advisory lock (the eraser takes it exclusively), SQLite takes its database write
  lock (one writer at a time anyway). A writer either commits before the eraser deletes, and its
  rows are deleted, or starts after the tombstone is committed, and sees it;
- the *blob* fence, held while a batch is read from the outbox and written to the blob store. The
  eraser waits for it after committing its SQL part and before rewriting the blob files, so a
  batch read before the erasure is in the store by the time the rewrite looks, and a batch read
  after it no longer holds the user. PostgreSQL: a shared advisory lock; SQLite: a file lock
  beside the database file, which the API, the recorder process and the shipper process share.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from fatigue_guard.storage.records import PredictionRecord
from fatigue_guard.storage.sql.bulk_insert import insert_ignoring_conflicts
from fatigue_guard.storage.sql.tables import ErasedUser

# PostgreSQL advisory lock keys (any two 64-bit numbers no other code of ours uses).
RECORDING_FENCE_KEY = 7_364_201_001
BLOB_FENCE_KEY = 7_364_201_002

ERASED_USERS = ErasedUser.__table__
_HASH_SALT = b"fatigue-guard/erased-user/"
# Rows per lookup: far below either backend's bind-parameter limit.
_LOOKUP_CHUNK = 500


def erased_user_hash(user_id: str) -> str:
    """The tombstone's name for ``user_id`` (hex SHA-256 under a fixed, app-specific salt)."""
    return hashlib.sha256(_HASH_SALT + user_id.encode()).hexdigest()


def covered(
    records: Iterable[PredictionRecord], erased: dict[str, datetime]
) -> list[PredictionRecord]:
    """The ``records`` no tombstone covers: ``erased`` maps a user hash to its erasure time, and
    a record received at or before that time belongs to what was erased."""
    if not erased:
        return list(records)
    kept = []
    for record in records:
        at = erased.get(erased_user_hash(record.user_id))
        if at is None or record.received_at > at:
            kept.append(record)
    return kept


def recording_fence_statement(dialect_name: str, *, exclusive: bool = False) -> str:
    """SQL that takes the recording fence for the rest of the current transaction (writers
    share it; the eraser takes it ``exclusive``)."""
    if dialect_name == "postgresql":
        lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        return f"SELECT {lock}({RECORDING_FENCE_KEY})"
    # A write statement takes SQLite's write lock, even when it changes no row.
    return "UPDATE erased_users SET erased_at = erased_at WHERE 1 = 0"


def not_erased_via_cursor(
    cursor: Any, dialect: Dialect, records: Sequence[PredictionRecord]
) -> list[PredictionRecord]:
    """:meth:`TombstoneRepository.not_erased` on a DB-API cursor (the group-commit writer's)."""

    def run(statement: str, params: tuple[str, ...]) -> Iterable[Sequence[Any]]:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else ()

    return _not_erased(run, dialect, records)


# Runs one driver-level statement with positional parameters; its rows.
_Run = Callable[[str, tuple[str, ...]], Iterable[Sequence[Any]]]


def _not_erased(
    run: _Run, dialect: Dialect, records: Sequence[PredictionRecord]
) -> list[PredictionRecord]:
    """Take the recording fence, look the records' users up, keep what no tombstone covers.

    Straight through the driver, with the lookup's text built once per dialect and row count:
    compiling a SQLAlchemy query on every group commit doubled the writer's CPU.
    """
    run(recording_fence_statement(dialect.name), ())
    hashes = sorted({erased_user_hash(r.user_id) for r in records})
    to_datetime = _datetime_reader(dialect)
    erased: dict[str, datetime] = {}
    for start in range(0, len(hashes), _LOOKUP_CHUNK):
        chunk = tuple(hashes[start : start + _LOOKUP_CHUNK])
        for user_hash, at in run(_lookup_text(dialect, len(chunk)), chunk):
            erased[user_hash] = at if to_datetime is None else to_datetime(at)
    return covered(records, erased)


_LOOKUP_TEXTS: dict[tuple[str, str, int], str] = {}
_DATETIME_READERS: dict[tuple[str, str], Callable[[Any], Any] | None] = {}


def _lookup_text(dialect: Dialect, count: int) -> str:
    key = (dialect.name, dialect.paramstyle, count)
    text_ = _LOOKUP_TEXTS.get(key)
    if text_ is None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        # Only placeholders go in; every hash is a bound parameter.
        text_ = (
            "SELECT user_hash, erased_at FROM erased_users WHERE user_hash IN "  # nosec B608
            f"({', '.join([mark] * count)})"
        )
        _LOOKUP_TEXTS[key] = text_
    return text_


def _datetime_reader(dialect: Dialect) -> Callable[[Any], Any] | None:
    """What turns the driver's ``erased_at`` into an aware datetime (SQLite returns text)."""
    key = (dialect.name, dialect.driver)
    if key not in _DATETIME_READERS:
        column_type = ERASED_USERS.c.erased_at.type
        _DATETIME_READERS[key] = column_type.dialect_impl(dialect).result_processor(dialect, None)
    return _DATETIME_READERS[key]


class TombstoneRepository:
    """The ``erased_users`` table, inside a unit of work's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, user_id: str, at: datetime) -> None:
        """Tombstone ``user_id`` as of ``at`` (a later erasure moves the time forward)."""
        user_hash = erased_user_hash(user_id)
        row = {"user_hash": user_hash, "erased_at": at}
        if not insert_ignoring_conflicts(self.session, ERASED_USERS, [row], "user_hash"):
            self.session.execute(
                update(ErasedUser)
                .where(ErasedUser.user_hash == user_hash, ErasedUser.erased_at < at)
                .values(erased_at=at)
            )

    def erased_at(self, user_ids: Iterable[str]) -> dict[str, datetime]:
        """Tombstones of those of ``user_ids`` that have one: user hash -> erasure time."""
        hashes = sorted({erased_user_hash(u) for u in user_ids})
        found: dict[str, datetime] = {}
        for start in range(0, len(hashes), _LOOKUP_CHUNK):
            chunk = hashes[start : start + _LOOKUP_CHUNK]
            rows = self.session.execute(
                select(ErasedUser.user_hash, ErasedUser.erased_at).where(
                    ErasedUser.user_hash.in_(chunk)
                )
            )
            found.update({user_hash: at for user_hash, at in rows})
        return found

    def take_recording_fence(self, *, exclusive: bool = False) -> None:
        """Order this transaction's inserts against erasures (see the module docstring)."""
        dialect = self.session.get_bind().dialect.name
        self.session.execute(text(recording_fence_statement(dialect, exclusive=exclusive)))

    def not_erased(self, records: Sequence[PredictionRecord]) -> list[PredictionRecord]:
        """Take the recording fence, then keep the ``records`` no tombstone covers."""
        connection = self.session.connection()

        def run(statement: str, params: tuple[str, ...]) -> Iterable[Sequence[Any]]:
            result = connection.exec_driver_sql(statement, params)
            return result.all() if result.returns_rows else ()

        return _not_erased(run, connection.dialect, records)

    def hold_blob_fence(self) -> contextlib.AbstractContextManager[None]:
        """Shared hold of the blob fence until the block ends (within this unit of work)."""
        bind = self.session.get_bind()
        if bind.dialect.name == "postgresql":
            self.session.execute(text(f"SELECT pg_advisory_xact_lock_shared({BLOB_FENCE_KEY})"))
            return contextlib.nullcontext()
        return _file_fence(bind.engine.url.database, fcntl.LOCK_SH)

    def wait_for_blob_writers(self) -> None:
        """Return once every blob write that held the fence when this was called has ended."""
        bind = self.session.get_bind()
        if bind.dialect.name == "postgresql":
            self.session.execute(text(f"SELECT pg_advisory_xact_lock({BLOB_FENCE_KEY})"))
            self.session.rollback()  # the lock goes with the transaction
            return
        with _file_fence(bind.engine.url.database, fcntl.LOCK_EX):
            pass


_MEMORY_FENCE = threading.Lock()


@contextlib.contextmanager
def _file_fence(database: str | None, mode: int) -> Iterator[None]:
    """``flock`` on a file beside a SQLite database (every process on it shares the file)."""
    if not database or database == ":memory:":
        with _MEMORY_FENCE:  # a private database: one process, one flusher
            yield
        return
    path = Path(database).expanduser().with_name(Path(database).name + ".blob-fence")
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), mode)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
