"""Calls handed from other threads to one owner thread, which runs them when it chooses.

Why: the recorder process (:mod:`~fatigue_guard.storage.recording.recorder_process`) commits
requests in its main thread. If the outbox flusher wrote its claims and done-marks from its own
thread, taking turns on the :class:`~fatigue_guard.storage.sql.writer_lock.WriterLock` would keep
SQLite out of it, but not the GIL: each time the lock changes hands, the thread it goes to must win
the GIL back from the other, and a request's group commit waits 3-10 ms behind a flusher write that
takes about one. Handed to the main thread, the flusher's writes run between two group commits,
in that thread, with no hand-over at all.

The owner waits on :meth:`ThreadHandoff.fileno` (readable when calls are waiting) beside its own
inputs and runs them with :meth:`~ThreadHandoff.run_pending`. A caller blocks until its call has
run and gets its result or its exception. Calls made by the owner itself, or while no thread
owns the handoff (before :meth:`~ThreadHandoff.claim`, after :meth:`~ThreadHandoff.close`), run
at once in the caller's thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class ThreadHandoff:
    """See the module docstring."""

    def __init__(self) -> None:
        self._calls: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)

    def __call__(self, call: Callable[[], T]) -> T:
        """Run ``call`` in the owner thread and return what it returned (or raise what it
        raised); in the caller's thread if that is the owner or no thread owns the handoff."""
        future: Future[T] = Future()
        with self._lock:
            handed = self._owner is not None and self._owner != threading.get_ident()
            if handed:
                self._calls.append((call, future))
                os.write(self._wake_write, b"\0")
        if not handed:
            return call()
        return future.result()

    def fileno(self) -> int:
        """Readable while calls wait (for ``select`` or ``multiprocessing.connection.wait``)."""
        return self._wake_read

    def claim(self) -> None:
        """Make the calling thread the owner."""
        with self._lock:
            self._owner = threading.get_ident()

    def run_pending(self) -> None:
        """Run, in this thread, every call waiting now (the owner calls this)."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_read, 4096)
        while True:
            with self._lock:
                if not self._calls:
                    return
                call, future = self._calls.popleft()
            try:
                future.set_result(call())
            except Exception as exc:
                future.set_exception(exc)

    def close(self) -> None:
        """Stop handing calls over: run those waiting, and any later ones in their callers."""
        with self._lock:
            self._owner = None
        self.run_pending()
        os.close(self._wake_read)
        os.close(self._wake_write)
