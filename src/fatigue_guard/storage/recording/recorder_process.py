"""The prediction recorder in a child process, so that its SQL work never waits for the API's GIL.

Why: in one process, the group-commit writer gives the GIL up around every SQLite call and must win
it back from the busy event loop each time. Under load that hand-back, not SQLite, was most of a
commit: 2.35 ms per group of three records, of which SQLite and the fsync took about 1.2 (see the
serving benchmark in the README). Here the API process pickles each record down a pipe and is woken
with the stored answer; a child process runs the data plane (one
:class:`~fatigue_guard.storage.recording.recorder.PredictionRecorder`: spool fallback, spool replay,
outbox flusher) and commits, in ONE thread, whatever arrived while its previous commit ran: the same
group commit, with nobody to hand the GIL to.

The guarantee is the in-process recorder's: a request is answered only after the child reported
its record durable (committed, or fsync'd to the spool). Idempotency is the recorder's own.

The answers to the event loop's records come back on a pipe of their own that the event loop
reads itself (``add_reader``), so each answer wakes the awaiting request directly. Through a
reader thread, every answer would first have to win the GIL from the busy event loop and then
wake the loop again through its self-pipe: measured that way, the time between the child's commit
and the loop seeing the answer was most of a logged request's wait (see the serving benchmark in
the README). Other calls (threads' records, edge syncs, reads, drains) and the child's counters
keep the control pipe and its reader thread, which also notices a dead child and starts a new one.

Failures:

- The API process dies (even SIGKILL): the child reads end-of-file, commits what it had read,
  stops its flusher and exits. Nothing answered is lost (answered means committed).
- The child dies: the records it had not acknowledged fail (their requests get 500: nothing was
  answered, and clients retry with the same event_id), a new child is started (retried with
  back-off if it fails to start), and meanwhile records are written by an in-process recorder,
  inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection, wait
from typing import Any
from uuid import UUID

from fatigue_guard.config import Settings
from fatigue_guard.storage.recording.group_commit import Pending, deliver
from fatigue_guard.storage.recording.messages import (
    AS_SENT,
    RECORD_CALLS,
    Answer,
    Call,
    CallKind,
    Report,
)
from fatigue_guard.storage.recording.recorder import (
    BatchResult,
    PredictionRecorder,
    RecorderStats,
    RecordNotDurable,
)
from fatigue_guard.storage.records import PredictionRecord

log = logging.getLogger(__name__)

_STATS_INTERVAL_S = 0.5
_START_TIMEOUT_S = 120.0
# First and longest wait between attempts to replace a dead child (it may fail to start too, e.g.
# while the disk is full); records are written inline meanwhile.
RESPAWN_BACKOFF_S = (0.5, 30.0)


class RecorderUnavailable(RuntimeError):
    """The recorder process went away before it acknowledged a record."""


class RecorderCallFailed(RuntimeError):
    """An error raised in the recorder process (type and message: the object may not pickle)."""


class RecorderProcess:
    """A :class:`~fatigue_guard.storage.recording.recorder.PredictionRecorder` run in a child
    process.

    Offers what the API uses of a recorder (``record``, ``record_async``, ``record_many``,
    ``get``, ``drain``, ``stats``, ``start``, ``stop``). ``local`` is an in-process recorder on
    the same stores, used inline while no child runs.
    """

    def __init__(self, settings: Settings, local: PredictionRecorder) -> None:
        self._settings = settings
        self.local = local
        self._context = multiprocessing.get_context("spawn")
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        # The current child's answer pipe for event-loop records, the loop that reads it, and
        # the pipes that loop watches (a dead child's until its end-of-file is read).
        self._answers: Connection | None = None
        self._answers_loop: asyncio.AbstractEventLoop | None = None
        self._watched: set[Connection] = set()
        self._send_lock = threading.Lock()
        # Calls the child has not answered yet; ``item`` is the record sent, if one was.
        self._waiters: dict[int, Pending[PredictionRecord | None]] = {}
        self._seq = itertools.count(1)
        self._link: threading.Thread | None = None
        self._available = False
        self._stopped = threading.Event()  # also wakes a back-off between restarts
        self._stats = local.stats()
        self.restarts = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the child and wait until its recorder runs (it imports the data plane)."""
        self._stopped.clear()
        self._spawn()
        self._link = threading.Thread(target=self._follow, name="recorder-link", daemon=True)
        self._link.start()

    def _spawn(self) -> None:
        parent, child = self._context.Pipe(duplex=True)
        answers, child_answers = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_main,
            args=(self._settings, child, child_answers),
            name="fatigue-guard-recorder",
            daemon=True,
        )
        process.start()
        child.close()
        child_answers.close()
        if not parent.poll(_START_TIMEOUT_S):
            process.kill()
            raise RuntimeError(f"recorder process not ready within {_START_TIMEOUT_S:.0f} s")
        report: Report = parent.recv()
        if report.kind != "ready":
            process.join(5)
            raise RuntimeError(f"recorder process failed to start: {report.payload}")
        self._stats = report.payload
        self._process, self._conn, self._answers = process, parent, answers
        self._available = True
        log.info("recorder process %s started", process.pid)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Let the child commit what it holds and flush the outbox within ``timeout_s``."""
        self._stopped.set()
        self._available = False
        process, conn = self._process, self._conn
        if process is None or conn is None:
            return
        with contextlib.suppress(OSError), self._send_lock:
            conn.send(Call("stop", 0, timeout_s))
        # Keep reading the answer pipe meanwhile: the child must not block on a full pipe.
        answers = self._answers
        reads_answers = answers is not None and self._may_read_answers_here()
        deadline = time.monotonic() + timeout_s + 10
        while process.is_alive() and time.monotonic() < deadline:
            if reads_answers:
                self._read_answer_pipe(answers)
            process.join(0.05)
        if reads_answers:
            self._read_answer_pipe(answers)
            self._close_answer_pipe(answers)
        if process.is_alive():
            log.warning("recorder process did not stop in time; killing it")
            process.kill()
            process.join(5)
        if self._link is not None:
            self._link.join(5)
        conn.close()
        self._fail_waiters(RecorderUnavailable("recorder stopped"))
        self._process = self._conn = self._answers = None

    @property
    def pid(self) -> int | None:
        """The child's process id (tests kill it)."""
        return self._process.pid if self._process is not None else None

    # -- calls ------------------------------------------------------------------------------

    async def record_async(self, record: PredictionRecord) -> PredictionRecord:
        """Hand ``record`` to the child and await its stored answer (no thread hop)."""
        if self._available:
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            kind: CallKind = "record-to-loop" if self._loop_reads_answers(loop) else "record"
            if self._send(kind, record, Pending(record, waiter=waiter, loop=loop)):
                return await waiter
        return await asyncio.to_thread(self.local.record, record)

    def record(self, record: PredictionRecord) -> PredictionRecord:
        return self._call("record", record, self.local.record, sent=record)

    def record_many(self, records: Sequence[PredictionRecord]) -> BatchResult:
        return self._call("record_many", list(records), self.local.record_many)

    def get(self, event_id: UUID) -> PredictionRecord | None:
        return self._call("get", event_id, self.local.get)

    def drain(self, timeout_s: float = 30.0) -> bool:
        return self._call("drain", timeout_s, self.local.drain)

    def stats(self) -> RecorderStats:
        """The child's counters as of its last report (every half second; no round trip)."""
        return self._stats if self._available else self.local.stats()

    def _call(
        self,
        kind: CallKind,
        payload: Any,
        inline: Callable[[Any], Any],
        sent: PredictionRecord | None = None,
    ) -> Any:
        future: Future = Future()
        if self._available and self._send(kind, payload, Pending(sent, future=future)):
            return future.result()
        return inline(payload)

    def _send(self, kind: CallKind, payload: Any, waiter: Pending[PredictionRecord | None]) -> bool:
        """Pass a call to the child; ``False`` if there is no child to take it."""
        seq = next(self._seq)
        self._waiters[seq] = waiter
        try:
            with self._send_lock:
                conn = self._conn
                if conn is None:
                    raise OSError("no recorder process")
                conn.send(Call(kind, seq, payload))
        except OSError:
            self._waiters.pop(seq, None)
            return False
        return True

    # -- the answer pipe, read by the event loop --------------------------------------------

    def _loop_reads_answers(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether ``loop`` (the running one) reads the current child's answer pipe; the first
        loop to ask does, for as long as it is open (a second one, e.g. a test client's, is
        answered through the control pipe)."""
        answers = self._answers
        if answers is None:
            return False
        owner = self._answers_loop
        if owner is not loop:
            if owner is not None and not owner.is_closed():
                return False
            self._answers_loop = loop
            self._watched.clear()  # a closed loop watches nothing
        if answers not in self._watched:  # first call, or a new child
            loop.add_reader(answers.fileno(), self._read_answer_pipe, answers)
            self._watched.add(answers)
        return True

    def _may_read_answers_here(self) -> bool:
        owner = self._answers_loop
        if owner is None or owner.is_closed():
            return True
        try:
            return asyncio.get_running_loop() is owner
        except RuntimeError:
            return not owner.is_running()

    def _read_answer_pipe(self, pipe: Connection) -> None:
        """Settle every answer waiting in ``pipe``; at its end-of-file (the child is gone) stop
        watching it: the link thread fails what the child left unanswered."""
        if pipe.closed:
            return
        try:
            while pipe.poll(0):
                self._settle(pipe.recv())
        except (EOFError, OSError):
            self._close_answer_pipe(pipe)

    def _close_answer_pipe(self, pipe: Connection) -> None:
        owner = self._answers_loop
        if pipe in self._watched:
            self._watched.discard(pipe)
            if owner is not None and not owner.is_closed():
                owner.remove_reader(pipe.fileno())
        pipe.close()

    # -- the link thread: answers from the child, and restarts ------------------------------

    def _follow(self) -> None:
        while True:
            conn = self._conn
            if conn is not None:
                self._read_answers(conn)
            self._available = False
            if conn is not None and not self._stopped.is_set():  # else stop() closes it
                with self._send_lock:  # not under a sender's feet
                    conn.close()
            gone = RecorderUnavailable("the recorder process went away")
            if self._stopped.is_set():
                self._fail_waiters(gone)
                return
            self._fail_after_loop_answers(gone, list(self._waiters))
            self.restarts += 1
            log.error("recorder process died; recording inline until a new one runs")
            if not self._respawn():
                return

    def _respawn(self) -> bool:
        """Start a new child, retrying with back-off; ``False`` if stopped meanwhile."""
        delay, longest = RESPAWN_BACKOFF_S
        while not self._stopped.is_set():
            try:
                self._spawn()
                return True
            except Exception:
                log.exception(
                    "recorder process did not start; recording inline, retry in %.1f s", delay
                )
            self._stopped.wait(delay)
            delay = min(delay * 2, longest)
        return False

    def _read_answers(self, conn: Connection) -> None:
        while True:
            try:
                report: Report = conn.recv()
            except (EOFError, OSError):
                return
            if report.kind == "stats":
                self._stats = report.payload
            elif report.kind == "answers":
                self._settle(report.payload)
            elif report.kind == "stopped":
                return

    def _settle(self, answers: list[Answer]) -> None:
        outcomes: list[tuple[Pending, object]] = []
        for seq, ok, value in answers:
            pending = self._waiters.pop(seq, None)
            if pending is None:
                continue
            if not ok:
                error = value if isinstance(value, RecordNotDurable) else RecorderCallFailed(value)
                outcomes.append((pending, error))
            elif value == AS_SENT and pending.item is not None:
                outcomes.append((pending, pending.item))
            else:
                outcomes.append((pending, value))
        deliver(outcomes)

    def _fail_waiters(self, error: BaseException, seqs: list[int] | None = None) -> None:
        seqs = list(self._waiters) if seqs is None else seqs
        self._settle([Answer(seq, False, f"{type(error).__name__}: {error}") for seq in seqs])

    def _fail_after_loop_answers(self, error: BaseException, seqs: list[int]) -> None:
        """Fail the calls ``seqs`` of a dead child, but only once the event loop has read the
        answers it sent before dying: those records are stored and their callers are answered."""
        owner, answers = self._answers_loop, self._answers
        if owner is not None and answers in self._watched and owner.is_running():

            def read_then_fail() -> None:
                self._read_answer_pipe(answers)
                self._fail_waiters(error, seqs)

            with contextlib.suppress(RuntimeError):  # closed meanwhile: fail them here
                owner.call_soon_threadsafe(read_then_fail)
                return
        self._fail_waiters(error, seqs)


# -- the child ---------------------------------------------------------------------------------


def _child_main(settings: Settings, conn: Connection, loop_answers: Connection) -> None:
    """Run one recorder until the parent says stop or goes away. Answers to records of the
    parent's event loop go down ``loop_answers``, all else down ``conn``."""
    from fatigue_guard.storage.factory import build_storage
    from fatigue_guard.storage.recording.shipper_process import ShipperProcess
    from fatigue_guard.storage.recording.thread_handoff import ThreadHandoff

    # Ctrl-C in a terminal reaches the whole process group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    send_lock = threading.Lock()

    def send(message: Report) -> None:
        with contextlib.suppress(OSError), send_lock:  # parent gone: the records are stored
            conn.send(message)

    # The outbox flusher's batches are read and written to the blob store in a process of its
    # own, and its SQL writes run here, between two group commits: either one, done in the
    # flusher's thread, kept the GIL from this loop for milliseconds at a time.
    shipper = ShipperProcess(settings)
    flusher_writes = ThreadHandoff()
    flusher_writes.claim()
    try:
        storage = build_storage(settings, shipper=shipper, write_on=flusher_writes)
        recorder = storage.recorder
        # Records arrive here in batches already (record_batch): no group-commit thread.
        recorder.start(group_commit=False)
    except Exception as exc:
        send(Report("failed", f"{type(exc).__name__}: {exc}"))
        raise
    # What is alive now (modules, engine, recorder) lives as long as the process: keep it out of
    # the collector's full passes, which would otherwise stall a group commit (as in the API).
    gc.freeze()
    send(Report("ready", recorder.stats()))
    done = threading.Event()

    def report_stats() -> None:
        while not done.wait(_STATS_INTERVAL_S):
            send(Report("stats", recorder.stats()))

    threading.Thread(target=report_stats, name="recorder-stats", daemon=True).start()
    calls = ThreadPoolExecutor(max_workers=2, thread_name_prefix="recorder-call")
    stop_timeout_s: float | None = None  # set by the parent's "stop"
    try:
        while stop_timeout_s is None:
            try:
                wait([conn, flusher_writes])
                messages: list[Call] = []
                while conn.poll(0):  # everything that arrived during the last commit
                    messages.append(conn.recv())
            except (EOFError, OSError):
                break  # the API process is gone
            records = [m for m in messages if m.kind in RECORD_CALLS]
            if records:
                stored = recorder.record_batch([call.payload for call in records])
                answers: dict[str, list[Answer]] = {kind: [] for kind in RECORD_CALLS}
                for call, answer in zip(records, stored, strict=True):
                    answers[call.kind].append(
                        Answer(call.seq, True, AS_SENT)
                        if answer is call.payload
                        else _answer(call.seq, answer)
                    )
                if answers["record"]:
                    send(Report("answers", answers["record"]))
                if answers["record-to-loop"]:
                    with contextlib.suppress(OSError):  # parent gone: the records are stored
                        loop_answers.send(answers["record-to-loop"])
            flusher_writes.run_pending()
            for call in messages:
                if call.kind == "stop":
                    stop_timeout_s = float(call.payload)
                    break
                if call.kind not in RECORD_CALLS:
                    calls.submit(_run_call, recorder, call.kind, call.payload).add_done_callback(
                        lambda future, seq=call.seq: send(Report("answers", [_answer(seq, future)]))
                    )
    finally:
        flusher_writes.close()  # the flusher writes in its own thread again while it stops
        calls.shutdown(wait=True)
        done.set()
        timeout_s = 10.0 if stop_timeout_s is None else stop_timeout_s
        # A shipper started only now (no batch was due before) spends seconds importing: it
        # ships what it can within the stop's time; what it cannot stays in the outbox.
        shipper.stop_waiting_at(time.monotonic() + timeout_s)
        recorder.stop(timeout_s)
        shipper.close()
        storage.close()
        send(Report("stopped", None))
        conn.close()
        loop_answers.close()


def _run_call(recorder: PredictionRecorder, kind: CallKind, payload: Any) -> Any:
    if kind == "record_many":
        return recorder.record_many(payload)
    if kind == "get":
        return recorder.get(payload)
    if kind == "drain":
        return recorder.drain(payload)
    raise ValueError(f"unknown recorder call {kind!r}")


def _answer(seq: int, outcome: Any) -> Answer:
    if isinstance(outcome, Future):
        error = outcome.exception()
        outcome = error if error is not None else outcome.result()
    if isinstance(outcome, RecordNotDurable):
        return Answer(seq, False, outcome)  # the API answers it as such: it must stay one
    if isinstance(outcome, BaseException):
        return Answer(seq, False, f"{type(outcome).__name__}: {outcome}")
    return Answer(seq, True, outcome)
