"""The facade the API calls to record predictions, durably, before the answer leaves.

A prediction's metadata row and its outbox row are written in one SQL transaction; a background
:class:`~fatigue_guard.storage.recording.outbox.OutboxFlusher` ships the features to the blob store
later. If the SQL DB is unreachable, records are fsync'd to the local
:class:`~fatigue_guard.storage.recording.spool.Spool` instead and replayed when the DB answers
again, so the API can still answer. Every path is idempotent on event_id: the first stored answer
wins and is what a re-send gets back.

Group commit: once :meth:`PredictionRecorder.start` has run, single records go
through a :class:`~fatigue_guard.storage.recording.group_commit.GroupCommitter`: one writer thread
commits everything that queued while its previous commit was in flight as ONE transaction (one
fsync), and wakes each caller only after that commit (or the spool's fsync) returned. So concurrent
requests share the durability cost instead of each paying milliseconds, and an answered prediction
is always already durable. :meth:`~PredictionRecorder.record_async` is the event-loop entry point
(no thread-pool hop); :meth:`~PredictionRecorder.record` is the same for threads. Before ``start()``
(and after ``stop()``) both write inline, with identical semantics.

If the DB is unreachable and the spool cannot be written either (a full or unwritable disk),
nothing can make the record durable: it is refused with :class:`RecordNotDurable`, which the API
answers as a 503 with ``Retry-After``, so the phone keeps the event and sends it again (with the
same event_id) instead of being told it was recorded.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import exc as sa_exc

from fatigue_guard.storage.recording.group_commit import GroupCommitter, GroupCommitterStopped
from fatigue_guard.storage.recording.outbox import OutboxFlusher
from fatigue_guard.storage.recording.prediction_writer import PredictionWriter
from fatigue_guard.storage.recording.spool import Spool
from fatigue_guard.storage.records import PredictionRecord
from fatigue_guard.storage.sql.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)

# Errors that mean "the DB is not there" (spool and retry later), as opposed to bugs.
DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)


def is_db_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached, however it surfaced.

    SQLAlchemy wraps driver errors raised inside a statement, but not every path does (a pool
    checkout through ``raw_connection`` raises the driver's own error), and a socket can fail
    below the driver. Every one of these must end in the spool, never in an answer lost to a
    5xx, so the driver's PEP 249 classes are recognised by name, whatever the driver.
    """
    if isinstance(exc, (*DB_UNAVAILABLE, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return any(cls.__name__ in _DBAPI_UNAVAILABLE for cls in type(exc).__mro__)


_DBAPI_UNAVAILABLE = frozenset({"OperationalError", "InterfaceError"})


# While the spool cannot be written, one ERROR line per this many seconds (every failure is
# counted in the stats): one line per request would bury everything else in the log.
SPOOL_FAILURE_LOG_EVERY_S = 30.0


class RecordNotDurable(RuntimeError):
    """The record could not be made durable: the SQL DB is unreachable and the spool cannot be
    written. Nothing was stored; the caller must not be told otherwise."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Outcome of :meth:`PredictionRecorder.record_many` (the ``/v1/sync`` counts)."""

    accepted: list[uuid.UUID] = field(default_factory=list)
    duplicates: list[uuid.UUID] = field(default_factory=list)
    spooled: bool = False


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """Counters for ``/metrics`` (cheap to read: no SQL on the scrape path)."""

    outbox_backlog: int
    flushed_records: int
    flush_failures: int
    spooled_total: int
    replayed_total: int
    spool_pending: bool
    db_available: bool
    group_commits: int = 0
    group_committed_records: int = 0
    spool_write_failures: int = 0  # spool appends that failed (their records were refused)


class PredictionRecorder:
    """Record answered predictions durably and idempotently; see the module docstring."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        writer: PredictionWriter,
        flusher: OutboxFlusher,
        spool: Spool,
        *,
        replay_interval_s: float = 2.0,
        db_retry_after_s: float = 1.0,
        recent_spooled_max: int = 100_000,
        group_commit_max_batch: int = 256,
        group_commit_max_wait_s: float = 0.0,
    ) -> None:
        self._uow = uow_factory
        self._writer = writer
        self.flusher = flusher
        self.spool = spool
        self._replay_interval_s = replay_interval_s
        self._db_retry_after_s = db_retry_after_s
        # While the DB is down, requests skip straight to the spool instead of each paying a
        # connection attempt; the replay thread reopens the gate when the DB answers.
        self._db_down_until = 0.0
        # Answers given while spooling, so a client retry during the outage gets the same one.
        self._recent_spooled: OrderedDict[uuid.UUID, PredictionRecord] = OrderedDict()
        self._recent_max = recent_spooled_max
        self._recent_lock = threading.Lock()
        self._stop = threading.Event()
        self._replayer: threading.Thread | None = None
        # Groups that arrived through record_batch (the recorder process batches by itself).
        self._batched_commits = 0
        self._batched_records = 0
        self._spool_failures = 0
        self._spool_failure_logged_at: float | None = None
        self._committer: GroupCommitter[PredictionRecord, PredictionRecord] = GroupCommitter(
            self._store_batch,
            max_batch=group_commit_max_batch,
            max_wait_s=group_commit_max_wait_s,
            name="prediction-group-commit",
        )

    # -- request path -----------------------------------------------------------------------

    def record(self, record: PredictionRecord) -> PredictionRecord:
        """Store ``record``; return the stored prediction (the earlier one if event_id existed).

        Returns only once the record is durable (committed, or fsync'd to the spool). Never
        raises because the DB is down: the record is spooled and returned as is.
        """
        earlier = self._spooled_answer(record)
        if earlier is not None:
            return earlier
        if self._committer.running:
            try:
                return self._committer.submit(record).result()
            except GroupCommitterStopped:
                pass  # shutting down: write it ourselves below
        return self._store_one(record)

    async def record_async(self, record: PredictionRecord) -> PredictionRecord:
        """:meth:`record` for the event loop: awaits the shared group commit, no thread hop."""
        earlier = self._spooled_answer(record)
        if earlier is not None:
            return earlier
        if self._committer.running:
            try:
                return await self._committer.submit_async(record)
            except GroupCommitterStopped:
                pass
        return await asyncio.to_thread(self._store_one, record)

    def record_batch(
        self, records: Sequence[PredictionRecord]
    ) -> list[PredictionRecord | BaseException]:
        """What the group commit does with whatever queued meanwhile, for a caller that batches
        by itself (:mod:`~fatigue_guard.storage.recording.recorder_process`): store ``records``
        durably in one transaction and return one answer each, or the exception of a record that
        failed
        alone."""
        answers: list[PredictionRecord | BaseException | None] = [
            self._spooled_answer(r) for r in records
        ]
        todo = [r for r, answer in zip(records, answers, strict=True) if answer is None]
        stored = iter(self._store_batch(todo) if todo else [])
        self._batched_commits += 1
        self._batched_records += len(records)
        return [answer if answer is not None else next(stored) for answer in answers]

    def _spooled_answer(self, record: PredictionRecord) -> PredictionRecord | None:
        # Answers given while spooling, so a client retry during an outage gets the same one.
        if not self._recent_spooled:  # lock-free fast path: the dict is empty unless spooling
            return None
        with self._recent_lock:
            return self._recent_spooled.get(record.event_id)

    def _store_one(self, record: PredictionRecord) -> PredictionRecord:
        result = self._store_batch([record])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _store_batch(
        self, records: Sequence[PredictionRecord]
    ) -> list[PredictionRecord | BaseException]:
        """Durably store ``records`` in one transaction (or one spool fsync); one answer each.

        The answer is the stored prediction: the record itself when it was new, else the first
        one stored under its event_id (earlier in the DB, or earlier in this same batch). A
        record that breaks the transaction for reasons other than an unreachable DB gets its
        own error, without failing the others (they are retried one by one).
        """
        if self._db_known_down():
            return self._spool_answers(records)
        try:
            inserted = self._writer.add_many(records)  # committed
            missing = {r.event_id for r in records} - inserted
            stored = self._stored(missing) if missing else {}
        except Exception as exc:
            if is_db_unavailable(exc):
                self._mark_db_down()
                return self._spool_answers(records)
            if len(records) == 1:
                return [exc]
            log.warning("group commit of %d records failed; retrying one by one", len(records))
            return [answer for r in records for answer in self._store_batch([r])]
        self.flusher.notify(len(inserted))
        first: dict[uuid.UUID, PredictionRecord] = {}
        answers: list[PredictionRecord | BaseException] = []
        for r in records:
            if r.event_id in inserted:
                answers.append(first.setdefault(r.event_id, r))
            else:  # stored before; if it vanished meanwhile (erasure), this answer stands
                answers.append(stored.get(r.event_id, r))
        return answers

    def _stored(self, event_ids: set[uuid.UUID]) -> dict[uuid.UUID, PredictionRecord]:
        with self._uow() as uow:
            return uow.predictions.get_many(event_ids)

    def _spool_answers(
        self, records: Sequence[PredictionRecord]
    ) -> list[PredictionRecord | BaseException]:
        try:
            self._spool(records)
        except RecordNotDurable as exc:
            return [RecordNotDurable(*exc.args) for _ in records]
        with self._recent_lock:
            return [self._recent_spooled.get(r.event_id, r) for r in records]

    def record_many(self, records: Sequence[PredictionRecord]) -> BatchResult:
        """Store many records in one transaction (e.g. an edge sync); which were new.

        If the DB is down, all are spooled and counted as accepted (replay dedups later); if
        the spool cannot be written either, :class:`RecordNotDurable` is raised.
        """
        if not records:
            return BatchResult()
        if not self._db_known_down():
            try:
                with self._uow(write=True) as uow:
                    inserted = uow.predictions.add_many(records)
                    uow.commit()
            except Exception as exc:
                if not is_db_unavailable(exc):
                    raise
                self._mark_db_down()
            else:
                self.flusher.notify(len(inserted))
                accepted, duplicates, seen = [], [], set()
                for r in records:
                    if r.event_id in inserted and r.event_id not in seen:
                        accepted.append(r.event_id)
                    else:
                        duplicates.append(r.event_id)
                    seen.add(r.event_id)
                return BatchResult(accepted, duplicates)
        self._spool(records)
        return BatchResult([r.event_id for r in records], [], spooled=True)

    def get(self, event_id: uuid.UUID) -> PredictionRecord | None:
        """The stored prediction, or ``None``. Sees spooled records while the DB is down."""
        with self._recent_lock:
            spooled = self._recent_spooled.get(event_id)
        if spooled is not None:
            return spooled
        with self._uow() as uow:
            return uow.predictions.get(event_id)

    # -- DB availability and the spool ------------------------------------------------------

    def _db_known_down(self) -> bool:
        return time.monotonic() < self._db_down_until

    def _mark_db_down(self) -> None:
        if not self._db_known_down():
            log.warning("SQL database unreachable; spooling records locally")
        self._db_down_until = time.monotonic() + self._db_retry_after_s

    def _spool(self, records: Sequence[PredictionRecord]) -> None:
        """Append ``records`` to the spool, or raise :class:`RecordNotDurable` (logged, counted)."""
        try:
            self.spool.append(records)
        except OSError as exc:
            self._spool_failed(len(records), exc)
            raise RecordNotDurable(
                "the SQL database is unreachable and the local spool cannot be written"
            ) from exc
        if self._spool_failure_logged_at is not None:
            self._spool_failure_logged_at = None
            log.warning("local spool writable again; spooling records while SQL is unreachable")
        with self._recent_lock:
            for r in records:
                self._recent_spooled.setdefault(r.event_id, r)
            while len(self._recent_spooled) > self._recent_max:
                self._recent_spooled.popitem(last=False)

    def _spool_failed(self, count: int, exc: OSError) -> None:
        self._spool_failures += 1
        now = time.monotonic()
        last = self._spool_failure_logged_at
        if last is not None and now - last < SPOOL_FAILURE_LOG_EVERY_S:
            return
        self._spool_failure_logged_at = now
        # The cause and where, never the records (health data).
        cause = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        log.error(
            "cannot record predictions: the SQL database is unreachable and the spool in %s "
            "cannot be written (%s: %s); %d record(s) refused, and every one after them until "
            "either is back",
            self.spool.directory,
            cause,
            exc.strerror or exc,
            count,
            extra={"cause": cause, "failures": self._spool_failures},
        )

    def _replay_sink(self, records: Sequence[PredictionRecord]) -> None:
        with self._uow(write=True) as uow:
            uow.predictions.add_many(records)
            uow.commit()

    def replay_spool(self) -> int:
        """Move spooled records into the DB now; return how many were replayed.

        Raises the DB's error if it is still unreachable (the spool keeps the records).
        """
        if not self.spool.has_pending():
            return 0
        count = self.spool.replay(self._replay_sink)
        self._db_down_until = 0.0
        if count:
            log.info("replayed spooled records", extra={"records": count})
            self.flusher.notify(count)
        with self._recent_lock:
            if not self.spool.has_pending():
                self._recent_spooled.clear()
        return count

    def _run_replayer(self) -> None:
        while not self._stop.wait(self._replay_interval_s):
            try:
                self.replay_spool()
            except DB_UNAVAILABLE:
                self._mark_db_down()
            except Exception:
                log.exception("spool replay failed")

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, *, group_commit: bool = True) -> None:
        """Start the outbox flusher, the group-commit writer (unless ``group_commit=False``: a
        caller that batches by itself uses :meth:`record_batch`) and the spool replayer, and
        replay leftovers right away."""
        self._stop.clear()
        try:
            self.replay_spool()
        except DB_UNAVAILABLE:
            self._mark_db_down()
        self.flusher.start()
        if group_commit:
            self._committer.start()
        if self._replayer is None or not self._replayer.is_alive():
            self._replayer = threading.Thread(
                target=self._run_replayer, name="spool-replayer", daemon=True
            )
            self._replayer.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Replay and flush what can be done within ``timeout_s``; leave the rest for next start."""
        # First commit every record already handed to us (their callers are waiting).
        self._committer.stop(timeout_s)
        self._stop.set()
        if self._replayer is not None:
            self._replayer.join(timeout=timeout_s)
            self._replayer = None
        try:
            self.replay_spool()
        except DB_UNAVAILABLE:
            log.warning("SQL database still unreachable at shutdown; spool kept for next start")
        try:
            self.flusher.stop(timeout_s)
        except Exception:
            log.warning("outbox not fully flushed at shutdown; kept for next start", exc_info=True)
        self.spool.close()
        self._writer.close()

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Replay the spool and flush the outbox until both are empty (tests, CLI, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self.spool.has_pending():
            try:
                self.replay_spool()
            except DB_UNAVAILABLE:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.2)
        return self.flusher.drain(max(0.0, deadline - time.monotonic()))

    def stats(self) -> RecorderStats:
        s = self.flusher.stats
        g = self._committer.stats()
        return RecorderStats(
            outbox_backlog=s.backlog,
            flushed_records=s.flushed_records,
            flush_failures=s.flush_failures,
            spooled_total=self.spool.spooled_total,
            replayed_total=self.spool.replayed_total,
            spool_pending=self.spool.has_pending(),
            db_available=not self._db_known_down(),
            group_commits=g.batches + self._batched_commits,
            group_committed_records=g.items + self._batched_records,
            spool_write_failures=self._spool_failures,
        )
