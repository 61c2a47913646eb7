"""Every outbox statement the flusher runs finds its rows through an index.

The outbox keeps a day of shipped rows (hundreds of thousands on a busy API); a statement that
scans the table costs hundreds of milliseconds of the CPU the request path needs (``load_batch``
without its status term takes 184 ms per batch at 300k rows, and the API's p99 rises with it).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event

from fatigue_guard.storage.factory import build_storage
from tests.storage.conftest import spread_records, storage_settings


def test_flusher_statements_use_indexes(tmp_path: Path) -> None:
    storage = build_storage(storage_settings(tmp_path, outbox_retention_s=0.0))
    storage.upgrade()
    statements: list[tuple[str, object]] = []

    @event.listens_for(storage.engine, "before_cursor_execute")
    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if "outbox" in statement and not statement.lstrip().upper().startswith("INSERT"):
            statements.append((statement, parameters))

    try:
        storage.recorder.record_many(spread_records(30))
        flusher = storage.recorder.flusher
        flusher.flush_once(force=True)
        flusher.backlog()
        flusher.purge_once()
        event.remove(storage.engine, "before_cursor_execute", capture)
        kinds = {s.split()[0].upper() for s, _ in statements}
        assert kinds == {"SELECT", "UPDATE", "DELETE"}, kinds
        with storage.engine.connect() as connection:
            for statement, parameters in statements:
                plan = connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, parameters
                ).fetchall()
                scans = [row[-1] for row in plan if row[-1].startswith("SCAN outbox")]
                assert not scans, f"{statement!r} scans the outbox: {scans}"
    finally:
        storage.close()
