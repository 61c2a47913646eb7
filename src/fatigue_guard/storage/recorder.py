"""The facade the API calls to record predictions: one small transaction per request.

``record()`` writes the prediction's metadata row and its outbox row in one SQL transaction and
returns; a background :class:`~fatigue_guard.storage.outbox.OutboxFlusher` ships the features to
the blob store later. If the SQL DB is unreachable, the record is fsync'd to the local
:class:`~fatigue_guard.storage.spool.Spool` instead and replayed when the DB answers again, so
the API can still answer. Every path is idempotent on event_id.

Thread-safety: ``record()`` may be called from many threads at once (each call uses its own
session). Its signature takes and returns plain records, so a later group-commit implementation
can batch concurrent calls into one transaction without changing callers.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import exc as sa_exc

from fatigue_guard.storage.outbox import OutboxFlusher
from fatigue_guard.storage.records import PredictionRecord
from fatigue_guard.storage.spool import Spool
from fatigue_guard.storage.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)

# Errors that mean "the DB is not there" (spool and retry later), as opposed to bugs.
DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)


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


class PredictionRecorder:
    """Record answered predictions durably and idempotently; see the module docstring."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        flusher: OutboxFlusher,
        spool: Spool,
        *,
        replay_interval_s: float = 2.0,
        db_retry_after_s: float = 1.0,
        recent_spooled_max: int = 100_000,
    ) -> None:
        self._uow = uow_factory
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

    # -- request path -----------------------------------------------------------------------

    def record(self, record: PredictionRecord) -> PredictionRecord:
        """Store ``record``; return the stored prediction (the earlier one if event_id existed).

        Never raises because the DB is down: the record is spooled and returned as is.
        """
        with self._recent_lock:
            earlier = self._recent_spooled.get(record.event_id)
        if earlier is not None:
            return earlier
        if self._db_known_down():
            self._spool([record])
            return record
        try:
            with self._uow() as uow:
                inserted = uow.predictions.add_many([record])
                stored = record if inserted else uow.predictions.get(record.event_id)
                uow.commit()
        except DB_UNAVAILABLE:
            self._mark_db_down()
            self._spool([record])
            return record
        self.flusher.wake()
        return stored or record

    def record_many(self, records: Sequence[PredictionRecord]) -> BatchResult:
        """Store many records in one transaction (e.g. an edge sync); which were new.

        If the DB is down, all are spooled and counted as accepted (replay dedups later).
        """
        if not records:
            return BatchResult()
        if not self._db_known_down():
            try:
                with self._uow() as uow:
                    inserted = uow.predictions.add_many(records)
                    uow.commit()
            except DB_UNAVAILABLE:
                self._mark_db_down()
            else:
                self.flusher.wake()
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
        self.spool.append(records)
        with self._recent_lock:
            for r in records:
                self._recent_spooled.setdefault(r.event_id, r)
            while len(self._recent_spooled) > self._recent_max:
                self._recent_spooled.popitem(last=False)

    def _replay_sink(self, records: Sequence[PredictionRecord]) -> None:
        with self._uow() as uow:
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
            self.flusher.wake()
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

    def start(self) -> None:
        """Start the outbox flusher and the spool replayer (and replay leftovers right away)."""
        self._stop.clear()
        try:
            self.replay_spool()
        except DB_UNAVAILABLE:
            self._mark_db_down()
        self.flusher.start()
        if self._replayer is None or not self._replayer.is_alive():
            self._replayer = threading.Thread(
                target=self._run_replayer, name="spool-replayer", daemon=True
            )
            self._replayer.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Replay and flush what can be done within ``timeout_s``; leave the rest for next start."""
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
        return RecorderStats(
            outbox_backlog=s.backlog,
            flushed_records=s.flushed_records,
            flush_failures=s.flush_failures,
            spooled_total=self.spool.spooled_total,
            replayed_total=self.spool.replayed_total,
            spool_pending=self.spool.has_pending(),
            db_available=not self._db_known_down(),
        )
