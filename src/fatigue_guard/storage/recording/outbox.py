"""The outbox flusher: moves recorded feature rows from SQL to the blob feature store.

Why an outbox: the request path must not wait for (or fail because of) the blob store, yet an
answered prediction must never be lost. So the request writes its features to the ``outbox``
table in the same transaction as the prediction row, and this background worker ships them.

Exactly-once as seen by readers:

1. *Claim*: pending rows are stamped with a new ``batch_id`` (and a lease) in one transaction.
2. *Write*: the batch is written to ``.../<batch_id>.parquet`` keys, derived only from the batch.
3. *Mark done*: only after the write succeeded.

A crash or an error after (1) or (2) leaves the rows pending with the same ``batch_id``; the
retry rebuilds the same batch from the same rows and overwrites the same keys, so the store never
holds two copies. Failed writes back off exponentially (with jitter) per batch.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from fatigue_guard.storage.blob.feature_store import FeatureStore
from fatigue_guard.storage.sql.tables import utcnow
from fatigue_guard.storage.sql.tombstones import covered
from fatigue_guard.storage.sql.unit_of_work import SqlAlchemyUnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

T = TypeVar("T")

# Rows per background write transaction (claim, mark done, purge): about a millisecond of
# SQLite's write lock under load, so a request's group commit never waits long behind the
# flusher (see :mod:`fatigue_guard.storage.sql.writer_lock`); one transaction for a whole 500-row
# batch held it 3-10 ms. PostgreSQL does not need it, and does not mind it.
ROWS_PER_WRITE = 100


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """When to cut a batch and how to retry a failed one."""

    max_records: int = 500
    max_age_s: float = 5.0
    poll_interval_s: float = 0.5
    retry_base_s: float = 0.5
    retry_max_s: float = 30.0
    # How long a claimed batch is reserved for its flusher before others may retry it.
    lease_s: float = 120.0
    # Shipped rows are deleted once this old (their features live in the blob store; until then
    # a re-sent event_id gets its features back from SQL), checked every purge_interval_s.
    retention_s: float = 86_400.0
    purge_interval_s: float = 600.0

    def backoff(self, attempts: int) -> timedelta:
        delay = min(self.retry_max_s, self.retry_base_s * 2 ** max(0, attempts - 1))
        # Jitter.
        return timedelta(seconds=delay * random.uniform(0.5, 1.0))  # nosec B311


@dataclass
class FlusherStats:
    flushed_records: int = 0
    flushed_batches: int = 0
    flush_failures: int = 0
    backlog: int = 0
    purged_records: int = 0
    last_error: str | None = None


def new_batch_id(now: datetime) -> str:
    """Sortable by time, unique across replicas."""
    return f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, slots=True)
class ShipResult:
    """What writing one claimed batch to the feature store came to."""

    records: int  # rows the batch holds (0: none left under its id)
    attempts: int  # failed attempts before this one (they set the back-off)
    error: str | None = None  # the feature store refused the write: "Type: message"


# Step 2 for one batch id: read the batch and write it to the feature store.
BatchShipper = Callable[[str], ShipResult]


class ShippingStopped(RuntimeError):
    """A :data:`BatchShipper` takes no more batches: the process is stopping and its time is
    up. The claimed batch stays in the outbox for the next start."""


class CallRunner(Protocol):
    """Where the flusher's write transactions run: ``runner(call)`` runs ``call()`` in some
    thread and returns its result (e.g. a :class:`~fatigue_guard.storage.recording.thread_handoff.
    ThreadHandoff`; by default, the flusher's own thread)."""

    def __call__(self, call: Callable[[], T]) -> T: ...


def _run_here(call: Callable[[], T]) -> T:
    return call()


def ship_batch(
    uow_factory: UnitOfWorkFactory, feature_store: FeatureStore, batch_id: str
) -> ShipResult:
    """Read the claimed batch ``batch_id`` and write it to the feature store (step 2).

    A failed write comes back as ``error`` (the flusher backs off and retries the batch); a
    failed read raises (the SQL database is down: the flusher backs off as a whole).

    The read and the write happen under the blob fence, and records an erasure tombstone covers
    are left out, so that an erasure running meanwhile either waits for this write (and then
    rewrites the file) or is already visible to it (see
    :mod:`~fatigue_guard.storage.sql.tombstones`).
    """
    with uow_factory() as uow, uow.tombstones.hold_blob_fence():
        batch = uow.outbox.load_batch(batch_id)
        if not batch.records:
            return ShipResult(0, batch.attempts)
        records = covered(batch.records, uow.tombstones.erased_at(r.user_id for r in batch.records))
        if not records:
            return ShipResult(len(batch.records), batch.attempts)
        try:
            feature_store.write_batch(batch_id, records)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            return ShipResult(len(batch.records), batch.attempts, error)
    return ShipResult(len(batch.records), batch.attempts)


class OutboxFlusher:
    """Ships outbox rows to the feature store; run it as a thread with :meth:`start`/:meth:`stop`
    or step it by hand with :meth:`flush_once` / :meth:`drain` (tests, CLI).

    ``shipper`` does step 2 (read a claimed batch, write it to the store); by default
    :func:`ship_batch` in this thread. ``write_on`` runs the SQL writes (claims, done-marks,
    purges), each one transaction; by default in this thread.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        feature_store: FeatureStore,
        policy: FlushPolicy | None = None,
        shipper: BatchShipper | None = None,
        write_on: CallRunner | None = None,
    ) -> None:
        self._uow = uow_factory
        self.feature_store = feature_store
        self.policy = policy or FlushPolicy()
        self._shipper = shipper or self._ship_here
        self._write_on: CallRunner = write_on or _run_here
        self.stats = FlusherStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # One step at a time per process (the thread, drain() and stop() may overlap).
        self._step_lock = threading.Lock()
        # After a failed write, the store is probably down: cut no new batches until the
        # back-off has passed (the failed batch is retried first), instead of claiming the
        # whole backlog into batches that will all fail.
        self._paused_until = 0.0
        # A batch this process claimed but has not settled (done or failed) yet, e.g. because
        # the DB went away mid-ship: retried first, whatever its lease says.
        self._owned_batch: str | None = None
        # Rows this process committed since its last claim: lets notify() wake the thread only
        # when a full batch may be waiting (a racy count is fine: it is only a hint).
        self._arrived = 0

    # -- one step ---------------------------------------------------------------------------

    def flush_once(self, *, force: bool = False) -> int:
        """Ship at most one batch; return how many records it held (0 if nothing was due).

        A batch is due if it is a retry whose back-off has passed, or if enough rows are waiting
        (``max_records``) or the oldest has waited ``max_age_s``; ``force`` ships whatever waits.
        """
        with self._step_lock:
            if not force and time.monotonic() < self._paused_until:
                return 0
            if self._owned_batch is not None:
                return self._ship(self._owned_batch, retry=True)
            self._arrived = 0
            batch_id, retry = self._due_batch(force)
            if batch_id is None:
                return 0
            self._owned_batch = batch_id
            return self._ship(batch_id, retry=retry)

    def _due_batch(self, force: bool) -> tuple[str | None, bool]:
        """A retry that is due, else a newly claimed batch if one is due; whether it is a retry.

        Deciding reads outside any write transaction, and the claim goes in short
        transactions, so the write lock the API's group commit needs is never held for long.
        Another replica claiming in between is harmless: ``claim`` only takes unclaimed rows.
        """
        now = utcnow()
        with self._uow() as uow:
            retry = uow.outbox.due_claimed_batch(now)
            if retry is not None:
                return retry, True
            waiting = uow.outbox.unclaimed_count()
            oldest = uow.outbox.oldest_unclaimed_at()
        old_enough = oldest is not None and (now - oldest).total_seconds() >= self.policy.max_age_s
        if not waiting or not (force or waiting >= self.policy.max_records or old_enough):
            return None, False
        batch_id = new_batch_id(now)
        lease = timedelta(seconds=self.policy.lease_s)
        claimed = self._in_short_writes(
            lambda uow, rows: uow.outbox.claim(batch_id, rows, lease), up_to=self.policy.max_records
        )
        return (batch_id if claimed else None), False

    def _ship(self, batch_id: str, *, retry: bool) -> int:
        if retry:  # a fresh claim has just set its lease
            lease = timedelta(seconds=self.policy.lease_s)
            self._write(lambda uow: uow.outbox.extend_lease(batch_id, lease))
        shipped = self._shipper(batch_id)
        if not shipped.records:
            self._owned_batch = None
            return 0
        if shipped.error is not None:
            self.stats.flush_failures += 1
            self.stats.last_error = shipped.error
            delay = self.policy.backoff(shipped.attempts + 1)
            retry_at = utcnow() + delay
            self._paused_until = time.monotonic() + delay.total_seconds()
            # The cause is the store's error type and message (an endpoint, a status, a reason),
            # never the batch's rows.
            cause = " ".join(shipped.error.split())[:300]
            log.warning(
                "feature batch %s (%d records) not written, retry in %.1f s: %s",
                batch_id,
                shipped.records,
                delay.total_seconds(),
                cause,
                extra={
                    "batch_id": batch_id,
                    "records": shipped.records,
                    "error": shipped.error.split(":", 1)[0],
                },
            )
            error = shipped.error
            self._write(lambda uow: uow.outbox.mark_failed(batch_id, error, retry_at))
            self._owned_batch = None  # settled: retried by due_claimed_batch after the back-off
            return 0
        done = self._in_short_writes(lambda uow, rows: uow.outbox.mark_done(batch_id, rows))
        self._owned_batch = None
        self._paused_until = 0.0
        self.stats.flushed_records += done
        self.stats.flushed_batches += 1
        return done

    def _hand_back_owned_batch(self) -> None:
        """Make the batch a stopped shipper held due at once: its child was killed, so nothing
        writes it any more, and the next start or another replica should not wait out the
        lease to retry it (a retry rewrites the same batch, so it is never stored twice)."""
        batch_id = self._owned_batch
        if batch_id is None:
            return
        try:
            self._write(lambda uow: uow.outbox.extend_lease(batch_id, timedelta(0)))
            self._owned_batch = None
        except Exception:  # the DB is down too: the lease lapses on its own
            log.warning("could not hand back outbox batch %s", batch_id, exc_info=True)

    def _ship_here(self, batch_id: str) -> ShipResult:
        return ship_batch(self._uow, self.feature_store, batch_id)

    def _write(self, step: Callable[[SqlAlchemyUnitOfWork], T]) -> T:
        """``step(uow)`` in one write transaction, committed, run where ``write_on`` says."""

        def transaction() -> T:
            with self._uow(write=True) as uow:
                result = step(uow)
                uow.commit()
            return result

        return self._write_on(transaction)

    def _in_short_writes(
        self, step: Callable[[SqlAlchemyUnitOfWork, int], int], *, up_to: int | None = None
    ) -> int:
        """Repeat ``step(uow, rows)``, which changes at most ``rows`` rows (``ROWS_PER_WRITE``,
        less near ``up_to``), each time in its own short write transaction, until it changes
        fewer than asked or ``up_to`` rows changed in all; the total changed."""
        total = 0
        while up_to is None or total < up_to:
            rows = ROWS_PER_WRITE if up_to is None else min(ROWS_PER_WRITE, up_to - total)
            changed = self._write(lambda uow, rows=rows: step(uow, rows))
            total += changed
            if changed < rows:
                break
        return total

    def purge_once(self) -> int:
        """Delete shipped rows older than ``retention_s``; how many went. Without this the
        outbox would keep every prediction's features in SQL forever, and the flusher's own
        queries would slow down as the table grew."""
        cutoff = utcnow() - timedelta(seconds=self.policy.retention_s)
        purged = self._in_short_writes(lambda uow, rows: uow.outbox.purge_done(cutoff, rows))
        self.stats.purged_records += purged
        return purged

    def backlog(self) -> int:
        """Rows not yet in the blob store (a SQL count; cached in ``stats.backlog``)."""
        with self._uow() as uow:
            self.stats.backlog = uow.outbox.backlog()
        return self.stats.backlog

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Ship everything now, waiting out back-offs, until the outbox is empty or time is up.

        Returns ``True`` if the outbox is empty.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.flush_once(force=True)
                if self.backlog() == 0:
                    return True
            except ShippingStopped as exc:
                self._hand_back_owned_batch()
                log.warning("outbox not fully shipped (%s); the rest waits for the next start", exc)
                return False
            except Exception:  # DB hiccup: keep trying until the deadline
                log.warning("outbox drain step failed", exc_info=True)
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(self.policy.poll_interval_s, max(0.0, deadline - time.monotonic())))

    # -- thread -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-flusher", daemon=True)
        self._thread.start()

    def notify(self, records: int) -> None:
        """Hint that ``records`` rows were committed to the outbox.

        Wakes the thread only once a full batch (``max_records``) may be waiting; partial
        batches go out on the poll that finds them ``max_age_s`` old. Waking on every commit
        made the thread run three SQL queries per request, competing with the request path for
        the GIL and the database (it cost ~4 ms per request at concurrency 1).
        """
        self._arrived += records
        if self._arrived >= self.policy.max_records:
            self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the thread, then ship what can be shipped within ``timeout_s``.

        Whatever is left stays in the outbox for the next start. Returns ``True`` if empty.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
        return self.drain(timeout_s)

    def _run(self) -> None:
        failures = 0
        next_purge = time.monotonic() + self.policy.purge_interval_s
        while not self._stop.is_set():
            try:
                shipped = self.flush_once()
                self.backlog()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self.policy.purge_interval_s
                    self.purge_once()
                failures = 0
            except Exception:
                # The SQL DB itself is down: back off, the rows are safe where they are.
                failures += 1
                shipped = 0
                log.warning("outbox flusher step failed", exc_info=True)
            if shipped:
                continue  # more may be due right away
            wait = self.policy.poll_interval_s
            if failures:
                wait = self.policy.backoff(failures).total_seconds()
            self._wake.wait(wait)
            self._wake.clear()
