"""One move of the ``production`` alias at a time, across threads, processes and hosts.

The gate reads the alias, judges the candidate against the version it names, moves the alias and
publishes the move (the audit row). MLflow has no compare-and-set on an alias, so two promotions
running at once would both judge their candidate against the same production version, both move
the alias (the later silently undoing the earlier) and both record a move "from" that version.
Everything from reading the alias to publishing the move therefore runs under this lock, and a
second promotion judges its candidate against whatever the first one left in production.

The lock lives with the operational database, which every process that may move the alias shares:
on PostgreSQL a session-level advisory lock (held by one connection, and released by the server
if the process dies and its connection closes), on SQLite an ``flock`` on a file beside the
database file (processes that share a SQLite file share a host). Both also exclude two threads of
one process, each taking the lock through its own connection or open file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from fatigue_guard.config import Settings
from fatigue_guard.storage.sql.engine import create_db_engine

# A promotion holding the lock loads two pipelines, scores the hold-out and publishes the edge
# bundle: tens of seconds on a busy host. A second one waits that long, and then some.
WAIT_S = 600.0
_RETRY_S = 0.1


class AliasLockUnavailable(RuntimeError):
    """The lock could not be taken: another alias move held it for longer than the caller would
    wait, or the database that holds it did not answer. The alias must not move then."""


def lock_key(model_name: str) -> int:
    """The advisory lock key of one registered model's alias moves (a signed 64-bit number)."""
    digest = hashlib.sha256(f"fatigue-guard/production-alias/{model_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def production_alias_lock(settings: Settings, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold the lock of ``settings.registered_model_name``'s alias moves for the ``with`` body."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "postgresql":
        with _advisory_lock(settings, lock_key(settings.registered_model_name), wait_s):
            yield
        return
    database = url.database
    folder = (
        Path(database).expanduser().parent
        if database and database != ":memory:"
        else settings.home_dir
    )
    with _file_lock(folder / f"{settings.registered_model_name}.production-alias.lock", wait_s):
        yield


@contextmanager
def _advisory_lock(settings: Settings, key: int, wait_s: float) -> Iterator[None]:
    # One connection of its own, outside any transaction: the lock belongs to the session, so it
    # outlives the commits made while it is held and ends with the connection at the latest.
    engine = create_db_engine(settings)
    try:
        try:
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            raise AliasLockUnavailable(f"the database holding the lock: {exc}") from exc
        try:
            _wait_for_advisory_lock(conn, key, wait_s)
            yield
        finally:
            # A connection lost meanwhile took its session's lock with it.
            with contextlib.suppress(SQLAlchemyError):
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.close()
    finally:
        engine.dispose()


def _wait_for_advisory_lock(conn: Connection, key: int, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    try:
        while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            if time.monotonic() > deadline:
                raise AliasLockUnavailable(
                    f"another move of the production alias held its lock for {wait_s:g} s"
                )
            time.sleep(_RETRY_S)
    except SQLAlchemyError as exc:
        raise AliasLockUnavailable(f"the database holding the lock: {exc}") from exc


@contextmanager
def _file_lock(path: Path, wait_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AliasLockUnavailable(
                        f"another move of the production alias held {path} for {wait_s:g} s"
                    ) from None
                time.sleep(_RETRY_S)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
