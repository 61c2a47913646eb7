"""The durable outbox of the client: edge predictions and feedback waiting for the server.

SQLite in the client's data directory (what a phone has), WAL journal and ``synchronous=FULL``:
an item is on disk before :meth:`LocalQueue.enqueue` returns, so an app killed right after a
prediction still syncs it at the next start. The ``(kind, event_id)`` key makes a re-enqueue a
no-op; the server is idempotent on ``event_id`` too, so a batch that was delivered but whose
answer was lost is simply counted as duplicates next time.

An item leaves the queue only when the server acknowledged it. An item the server *rejected*
stays, with the reason, and is retried at the next sync (the usual cause is transient: the
server could not look up the edge model's version); after ``max_rejections`` it is parked as
``dead``: kept for inspection, never sent again, so one bad item cannot block a queue forever.
An event whose event_id the server holds for another user is parked at once (:meth:`park`):
no retry can free that id, and deleting the event would lose it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Kind = Literal["event", "feedback"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL CHECK (kind IN ('event', 'feedback')),
    event_id   TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'dead')),
    rejections INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (kind, event_id)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (kind, status, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class QueuedItem:
    seq: int
    event_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class ParkedItem:
    """An item that is kept but no longer sent, and why."""

    seq: int
    event_id: str
    payload: dict[str, Any]
    reason: str | None


@dataclass(frozen=True)
class QueueCounts:
    events: int
    feedback: int
    dead: int


class LocalQueue:
    """Outbox + a small key/value table (the device's user id), in ``<data_dir>/client.db``."""

    def __init__(self, path: Path, *, max_rejections: int = 5) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rejections = max_rejections
        # One connection guarded by a lock: a device is one user, contention is nil, and it
        # lets a UI thread and a background sync share the client.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def enqueue(self, kind: Kind, event_id: str, payload: dict[str, Any]) -> bool:
        """Store durably; False if this item was already queued."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO outbox (kind, event_id, payload, created_at) "
                "VALUES (?, ?, ?, ?)",
                (kind, event_id, json.dumps(payload), datetime.now(UTC).isoformat()),
            )
            return cursor.rowcount == 1

    def pending(self, kind: Kind, *, after_seq: int = 0, limit: int = 200) -> list[QueuedItem]:
        """Oldest first, starting after ``after_seq`` (one pass over the queue per sync)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, payload FROM outbox "
                "WHERE kind = ? AND status = 'pending' AND seq > ? ORDER BY seq LIMIT ?",
                (kind, after_seq, limit),
            ).fetchall()
        return [QueuedItem(seq, event_id, json.loads(payload)) for seq, event_id, payload in rows]

    def remove(self, seqs: Iterable[int]) -> int:
        """Forget acknowledged items, in one transaction."""
        ids = [(s,) for s in seqs]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", ids)
            self._db.execute("COMMIT")
        return len(ids)

    def reject(self, seq: int, error: str) -> None:
        """Count a rejection; park the item as ``dead`` after ``max_rejections``."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET rejections = rejections + 1, last_error = ?, "
                "status = CASE WHEN rejections + 1 >= ? THEN 'dead' ELSE status END "
                "WHERE seq = ?",
                (error[:2000], self.max_rejections, seq),
            )

    def park(self, kind: Kind, event_id: str, reason: str) -> bool:
        """Keep the item but stop sending it; False if no such item is queued."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE outbox SET status = 'dead', last_error = ? WHERE kind = ? AND event_id = ?",
                (reason[:2000], kind, event_id),
            )
            return cursor.rowcount == 1

    def parked(self, kind: Kind) -> list[ParkedItem]:
        """Items kept but no longer sent, oldest first, for the app to show or export."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, payload, last_error FROM outbox "
                "WHERE kind = ? AND status = 'dead' ORDER BY seq",
                (kind,),
            ).fetchall()
        return [
            ParkedItem(seq, event_id, json.loads(payload), reason)
            for seq, event_id, payload, reason in rows
        ]

    def is_pending(self, kind: Kind, event_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM outbox WHERE kind = ? AND event_id = ? AND status = 'pending'",
                (kind, event_id),
            ).fetchone()
        return row is not None

    def counts(self) -> QueueCounts:
        with self._lock:
            rows = dict(
                self._db.execute(
                    "SELECT CASE WHEN status = 'dead' THEN 'dead' ELSE kind END, count(*) "
                    "FROM outbox GROUP BY 1"
                ).fetchall()
            )
        return QueueCounts(rows.get("event", 0), rows.get("feedback", 0), rows.get("dead", 0))

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
