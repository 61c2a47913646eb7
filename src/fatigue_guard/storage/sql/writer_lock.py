"""Whose turn it is to write: the process-wide lock behind ``uow_factory(write=True)`` on SQLite.

SQLite allows one writer at a time. A writer that finds the database locked by another thread
falls into SQLite's busy handler, which sleeps 1, 2, 5, 10, 15 ... ms between retries instead of
waking when the lock is free; with the outbox flusher claiming batches beside the group-commit
writer, those sleeps put the API's p99 at 35-50 ms. Taking turns on this lock first means SQLite
never sees two writers of one process, and the next writer starts the moment the previous one is
done.

Turns go in arrival order. A plain lock lets the thread that just released it take it straight back,
and under load the group-commit writer always comes straight back: the outbox flusher then never got
a turn and its backlog grew by the full request rate. In arrival order, the flusher's short
transactions (see :data:`fatigue_guard.storage.recording.outbox.ROWS_PER_WRITE`) alternate with the
request commits, each delaying at most one of them by about a millisecond.
"""

from __future__ import annotations

import itertools
import threading
from types import TracebackType


class WriterLock:
    """A re-entrant, first-come-first-served lock; see the module docstring."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._tickets = itertools.count()
        self._serving = 0  # the ticket whose turn it is
        self._owner: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            ticket = next(self._tickets)
            while ticket != self._serving:
                self._cond.wait()
            self._owner = me
            self._depth = 1

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a WriterLock this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._serving += 1
                self._cond.notify_all()

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
