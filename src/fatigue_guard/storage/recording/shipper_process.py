"""The outbox flusher's reading and writing of feature batches, in a process of its own.

Why: in the recorder process (:mod:`~fatigue_guard.storage.recording.recorder_process`) the flusher
thread shares the GIL with the group-commit loop. Loading a 500-row batch (JSON payloads into
records) and building its Parquet file is a long stretch of Python and of C calls that keep the GIL,
and the commit loop, which gives the GIL up around every SQLite call, would wait behind it for
milliseconds at a time: measured, nearly every group commit over 4 ms happened while a batch was
being shipped, and with the flusher stopped the API's p99 fell by half (see the serving benchmark
in the README). Here that work runs in a child process with a GIL of its own; the flusher thread
keeps the claims and done-marks, so all SQL writes of the recorder process still take turns on its
:class:`~fatigue_guard.storage.sql.writer_lock.WriterLock` (a second process writing to SQLite would
meet the commit loop in SQLite's busy handler instead, which measured worse).

The child only reads SQL (a WAL reader never blocks the writer) and writes the blob store. It
is started on first use, started again after it died (the call that saw it die raises, so the
flusher backs off and retries the same batch), and exits when its pipe closes, so it never
outlives the recorder process. It is a plain subprocess, not a ``multiprocessing`` child,
because the recorder process is a daemon process, and those may not have children.

Once the recorder stops, its stop has a deadline (:meth:`ShipperProcess.stop_waiting_at`): a
shipper that has not answered by then (still starting, which takes seconds of imports, or held
up by a blob store that does not answer) is killed, and the batch stays claimed in the outbox
for the next start. The stop of an API process then keeps to its grace period.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess  # nosec B404
import sys
import threading
import time
from multiprocessing.connection import Connection

from fatigue_guard.config import Settings
from fatigue_guard.storage.recording.outbox import ShippingStopped, ShipResult, ship_batch

_STOP_TIMEOUT_S = 30.0
_DEADLINE_POLL_S = 0.1  # how late a call notices the stop's deadline, at most


class ShipperUnavailable(RuntimeError):
    """The shipper process went away before it answered."""


class ShipperProcess:
    """A :data:`~fatigue_guard.storage.recording.outbox.BatchShipper` that runs :func:`ship_batch`
    in a child process on the stores of ``settings``; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()  # one batch at a time, and not during close()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._deadline: float | None = None  # time.monotonic() after which no call waits

    def stop_waiting_at(self, deadline: float) -> None:
        """From now on, wait for no answer past ``deadline`` (``time.monotonic()``): a call
        still unanswered then kills the child and raises :class:`~fatigue_guard.storage.
        recording.outbox.ShippingStopped`, and later calls raise it at once."""
        self._deadline = deadline

    def __call__(self, batch_id: str) -> ShipResult:
        with self._lock:
            if self._deadline is not None and time.monotonic() >= self._deadline:
                raise ShippingStopped("the recorder is stopping and its time is up")
            conn = self._conn or self._start()
            try:
                conn.send(batch_id)
                # Polled, not one blocking read: the deadline may be set while this call waits.
                while not conn.poll(_DEADLINE_POLL_S):
                    deadline = self._deadline
                    if deadline is not None and time.monotonic() >= deadline:
                        self._discard(kill=True)
                        raise ShippingStopped(
                            "the batch shipper did not answer before the recorder's stop deadline"
                        )
                kind, value = conn.recv()
            except (EOFError, OSError) as exc:
                self._discard()
                raise ShipperUnavailable("the batch shipper process went away") from exc
        if kind != "ok":
            raise RuntimeError(f"shipping batch {batch_id} failed: {value}")
        return value

    @property
    def pid(self) -> int | None:
        """The child's process id, if one runs (tests kill it)."""
        return self._process.pid if self._process is not None else None

    def close(self) -> None:
        """Let the child finish its batch and exit."""
        with self._lock:
            self._discard()

    def _start(self) -> Connection:
        ours, theirs = socket.socketpair()
        with theirs:
            # Our own interpreter and module.
            process = subprocess.Popen(  # nosec B603
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
        conn = Connection(ours.detach())
        try:
            conn.send(self._settings)
        except OSError:
            conn.close()
            process.kill()
            process.wait()
            raise
        self._process, self._conn = process, conn
        return conn

    def _discard(self, *, kill: bool = False) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            conn.close()  # the child reads end-of-file and exits
        if process is not None:
            if kill:
                process.kill()
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serve(fd: int) -> None:
    """The child: ship each batch id read from ``fd`` until it closes."""
    from fatigue_guard.storage.blob.feature_store import FeatureStore
    from fatigue_guard.storage.blob.stores import build_blob_store
    from fatigue_guard.storage.sql.engine import create_db_engine
    from fatigue_guard.storage.sql.unit_of_work import unit_of_work_factory

    # Ctrl-C in a terminal reaches the whole process group: the recorder decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    settings: Settings = conn.recv()
    engine = create_db_engine(settings)
    uow_factory = unit_of_work_factory(engine)
    feature_store = FeatureStore(build_blob_store(settings))
    try:
        while True:
            try:
                batch_id = conn.recv()
            except (EOFError, OSError):
                return
            answer: tuple[str, object]
            try:
                answer = ("ok", ship_batch(uow_factory, feature_store, batch_id))
            except Exception as exc:
                answer = ("failed", f"{type(exc).__name__}: {exc}"[:500])
            with contextlib.suppress(OSError):
                conn.send(answer)
    finally:
        engine.dispose()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
