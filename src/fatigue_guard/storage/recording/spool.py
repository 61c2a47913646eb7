"""The spool: where answered predictions go while the SQL DB is unreachable.

Each process appends JSON lines to its own file under ``spool_dir`` and fsyncs every line before
the API answers, so an answered prediction survives a crash of the process too. The file is held
under an exclusive ``flock`` by its writer; replay (this process's file, or files left behind by
dead processes, whose locks the kernel released) feeds every line back through the normal,
idempotent recording path and deletes the file only when all lines are in the DB. A replay that
is interrupted just runs again: inserts are idempotent on event_id, so nothing is stored twice.

A write that fails (a full disk, a read-only or vanished directory) raises ``OSError`` and leaves
the file as it was before the call: the part already written is cut off again, so no torn line
can sit in front of the lines of later, answered records, and nothing the caller was told failed
is replayed later.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from fatigue_guard.storage.records import (
    PredictionRecord,
    prediction_from_json,
    prediction_to_json,
)

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".jsonl"
Sink = Callable[[Sequence[PredictionRecord]], object]


class Spool:
    """Append-only, fsync'd local storage for records, replayed into the DB later."""

    def __init__(self, directory: Path, *, replay_chunk: int = 500) -> None:
        self.directory = Path(directory)
        self._replay_chunk = replay_chunk
        self._lock = threading.Lock()
        # Unbuffered: a failed write leaves no bytes behind in a buffer that a later flush
        # would write after the lines of other records.
        self._handle: IO[bytes] | None = None
        self._path: Path | None = None
        self._size = 0  # bytes of whole, fsync'd lines in the open file
        self.spooled_total = 0
        self.replayed_total = 0

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Durably store ``records`` (one fsync for the lot) before returning.

        Raises ``OSError`` if they cannot be (see the module docstring); none of them is then
        in the spool.
        """
        data = "".join(json.dumps(prediction_to_json(r)) + "\n" for r in records).encode()
        with self._lock:
            handle = self._open()
            try:
                view = memoryview(data)
                while view:  # a short write (nearly full disk) is followed by the error
                    view = view[handle.write(view) or 0 :]
                os.fsync(handle.fileno())
            except OSError:
                self._cut_back(handle)
                raise
            self._size += len(data)
            self.spooled_total += len(records)

    def _cut_back(self, handle: IO[bytes]) -> None:
        """Drop what a failed append wrote; if even that fails, give the file up (its whole
        lines are still replayed; a torn last line is skipped) and start a new one next time."""
        try:
            os.ftruncate(handle.fileno(), self._size)
            os.fsync(handle.fileno())
        except OSError:
            handle.close()
            self._handle, self._path = None, None

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}{SPOOL_SUFFIX}"
            handle = path.open("ab", buffering=0)
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise
            self._handle, self._path, self._size = handle, path, 0
        return self._handle

    def pending_files(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob(f"*{SPOOL_SUFFIX}"))

    def has_pending(self) -> bool:
        return bool(self.pending_files())

    def replay(self, sink: Sink) -> int:
        """Feed every spooled record to ``sink`` (which must be idempotent); return the count.

        Stops at the first failure (the DB went away again), leaving the rest for later.
        """
        # Rotate our own file first so appends racing with the replay go to a fresh file.
        with self._lock:
            own = self._handle
            self._handle, self._path = None, None
        replayed = 0
        if own is not None:
            try:
                replayed += self._replay_file(Path(own.name), sink, own)
            finally:
                own.close()
        for path in self.pending_files():
            try:
                handle = path.open("r+", encoding="utf-8")
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process is still writing it
                replayed += self._replay_file(path, sink, handle)
            finally:
                handle.close()
        return replayed

    def _replay_file(self, path: Path, sink: Sink, handle: IO[str] | IO[bytes]) -> int:
        """Replay one locked file; delete it when everything in it reached the sink."""
        if not path.exists():
            return 0
        records = []
        with path.open("r", encoding="utf-8") as reader:
            for number, line in enumerate(reader, 1):
                if not line.strip():
                    continue
                try:
                    records.append(prediction_from_json(json.loads(line)))
                except (ValueError, KeyError):
                    # A torn last line from a crash mid-write: that request was never answered.
                    log.warning("skipping unreadable spool line", extra={"line": number})
        for start in range(0, len(records), self._replay_chunk):
            sink(records[start : start + self._replay_chunk])
        path.unlink(missing_ok=True)
        self.replayed_total += len(records)
        return len(records)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle, self._path = None, None
