"""Repositories: the data plane's SQL operations, one class per aggregate.

Each repository works inside a session owned by a unit of work
(:mod:`fatigue_guard.storage.sql.unit_of_work`) and never commits: the caller decides what one
transaction is (for a prediction: its metadata row and its outbox row, together).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.orm import Session

from fatigue_guard.storage.records import (
    FeedbackRecord,
    PredictionRecord,
    prediction_from_json,
    prediction_to_json,
)
from fatigue_guard.storage.sql.bulk_insert import (
    insert_ignoring_conflicts,
    insert_skipping_conflicts,
)
from fatigue_guard.storage.sql.personal_history import erase_personal_history
from fatigue_guard.storage.sql.tables import (
    OUTBOX_DONE,
    OUTBOX_PENDING,
    Device,
    DriftReport,
    Feedback,
    JobLock,
    OutboxEntry,
    Prediction,
    utcnow,
)
from fatigue_guard.storage.sql.tombstones import TombstoneRepository


class PredictionNotFound(LookupError):
    """No prediction with this event_id belongs to this user (deliberately the same error when
    it belongs to someone else, so that callers cannot probe other users' data)."""


def _prediction_row(record: PredictionRecord) -> dict[str, Any]:
    return {
        "event_id": record.event_id,
        "user_id": record.user_id,
        "measured_at": record.measured_at,
        "received_at": record.received_at,
        "probability": record.fatigue_probability,
        "alert": record.alert,
        "threshold": record.threshold,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "served_by": record.served_by,
        "features_version": record.features_version,
        "device_model": record.device_model,
        "platform": record.platform,
        "app_version": record.app_version,
    }


PREDICTIONS: Table = Prediction.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxEntry.__table__  # type: ignore[assignment]


def first_of_each_event(records: Sequence[PredictionRecord]) -> list[PredictionRecord]:
    """``records`` without repeated event_ids (the first one wins), in order."""
    unique: dict[uuid.UUID, PredictionRecord] = {}
    for record in records:
        unique.setdefault(record.event_id, record)
    return list(unique.values())


def prediction_rows(records: Sequence[PredictionRecord]) -> list[dict[str, Any]]:
    """The ``predictions`` rows of ``records``."""
    return [_prediction_row(r) for r in records]


def outbox_rows(records: Sequence[PredictionRecord], new: set[uuid.UUID]) -> list[dict[str, Any]]:
    """The ``outbox`` rows of those ``records`` whose event_id is in ``new``."""
    now = utcnow()
    return [
        {
            "event_id": r.event_id,
            "user_id": r.user_id,
            "payload": prediction_to_json(r),
            "status": OUTBOX_PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for r in records
        if r.event_id in new
    ]


def _record_from_row(row: Prediction, payload: dict[str, Any] | None) -> PredictionRecord:
    # Features are not kept in SQL; the outbox payload has them while it is retained.
    features = dict(payload["features"]) if payload else {}
    return PredictionRecord(
        event_id=row.event_id,
        user_id=row.user_id,
        measured_at=row.measured_at,
        received_at=row.received_at,
        features=features,
        fatigue_probability=row.probability,
        alert=row.alert,
        threshold=row.threshold,
        model_name=row.model_name,
        model_version=row.model_version,
        served_by=row.served_by,  # type: ignore[arg-type]
        features_version=row.features_version,
        device_model=row.device_model,
        platform=row.platform,
        app_version=row.app_version,
    )


class PredictionRepository:
    """Predictions and their outbox rows, idempotent on event_id."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, records: Sequence[PredictionRecord]) -> set[uuid.UUID]:
        """Insert new predictions (and their outbox rows); return the event_ids that were new.

        Existing event_ids, and repeats within ``records``, are skipped without error: the first
        stored answer wins. Records an erasure tombstone covers are skipped too (never stored).
        """
        unique = TombstoneRepository(self.session).not_erased(first_of_each_event(records))
        inserted = insert_ignoring_conflicts(
            self.session, PREDICTIONS, prediction_rows(unique), "event_id"
        )
        # Only new predictions get an outbox row, so none can conflict: no need to hear back.
        insert_skipping_conflicts(self.session, OUTBOX, outbox_rows(unique, inserted), "event_id")
        return inserted

    def get_many(self, event_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, PredictionRecord]:
        ids = list(event_ids)
        if not ids:
            return {}
        stmt = (
            select(Prediction, OutboxEntry.payload)
            .outerjoin(OutboxEntry, OutboxEntry.event_id == Prediction.event_id)
            .where(Prediction.event_id.in_(ids))
        )
        return {
            row.event_id: _record_from_row(row, payload)
            for row, payload in self.session.execute(stmt)
        }

    def get(self, event_id: uuid.UUID) -> PredictionRecord | None:
        return self.get_many([event_id]).get(event_id)

    def owner(self, event_id: uuid.UUID) -> str | None:
        return self.session.scalar(
            select(Prediction.user_id).where(Prediction.event_id == event_id)
        )


class FeedbackRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, record: FeedbackRecord) -> tuple[FeedbackRecord, bool]:
        """Store ground truth for one of the user's predictions; ``(stored, created)``.

        Raises :class:`PredictionNotFound` unless the prediction exists and belongs to
        ``record.user_id``. A second report for the same event_id changes nothing and returns
        the first one.
        """
        owner = self.session.scalar(
            select(Prediction.user_id).where(Prediction.event_id == record.event_id)
        )
        if owner is None or owner != record.user_id:
            raise PredictionNotFound(str(record.event_id))
        received_at = record.received_at or utcnow()
        inserted = insert_ignoring_conflicts(
            self.session,
            Feedback.__table__,  # type: ignore[arg-type]
            [
                {
                    "event_id": record.event_id,
                    "user_id": record.user_id,
                    "fatigue_event": record.fatigue_event,
                    "source": record.source,
                    "observed_at": record.observed_at,
                    "received_at": received_at,
                }
            ],
            "event_id",
        )
        if inserted:
            return FeedbackRecord(
                record.event_id,
                record.user_id,
                record.fatigue_event,
                record.source,
                record.observed_at,
                received_at,
            ), True
        stored = self.get(record.event_id)
        assert stored is not None
        return stored, False

    def get(self, event_id: uuid.UUID) -> FeedbackRecord | None:
        row = self.session.scalar(select(Feedback).where(Feedback.event_id == event_id))
        if row is None:
            return None
        return FeedbackRecord(
            row.event_id,
            row.user_id,
            row.fatigue_event,
            row.source,
            row.observed_at,
            row.received_at,
        )

    def labels_for_window(self, start: datetime, end: datetime) -> dict[uuid.UUID, bool]:
        """Labels of predictions measured in ``[start, end)``: event_id -> fatigue_event."""
        stmt = (
            select(Feedback.event_id, Feedback.fatigue_event)
            .join(Prediction, Prediction.event_id == Feedback.event_id)
            .where(Prediction.measured_at >= start, Prediction.measured_at < end)
        )
        return {event_id: label for event_id, label in self.session.execute(stmt)}


class DeviceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, key_id: str, key_hash: str, user_id: str, label: str | None = None) -> Device:
        device = Device(key_id=key_id, key_hash=key_hash, user_id=user_id, label=label)
        self.session.add(device)
        self.session.flush()
        return device

    def get_active(self, key_id: str) -> Device | None:
        return self.session.scalar(
            select(Device).where(Device.key_id == key_id, Device.revoked_at.is_(None))
        )

    def revoke(self, key_id: str) -> bool:
        result = self.session.execute(
            update(Device)
            .where(Device.key_id == key_id, Device.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def list_for_user(self, user_id: str) -> list[Device]:
        return list(self.session.scalars(select(Device).where(Device.user_id == user_id)))


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    """Outbox rows claimed together; always written to the same blob keys."""

    batch_id: str
    records: list[PredictionRecord]
    attempts: int


class OutboxRepository:
    """The queue between SQL and the blob store; see
    :mod:`fatigue_guard.storage.recording.outbox`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def backlog(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(OutboxEntry)
                .where(OutboxEntry.status == OUTBOX_PENDING)
            )
            or 0
        )

    def oldest_unclaimed_at(self) -> datetime | None:
        # The lowest id is the oldest row: one index step, where min(created_at) read them all.
        return self.session.scalar(
            select(OutboxEntry.created_at)
            .where(OutboxEntry.status == OUTBOX_PENDING, OutboxEntry.batch_id.is_(None))
            .order_by(OutboxEntry.id)
            .limit(1)
        )

    def unclaimed_count(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(OutboxEntry)
                .where(OutboxEntry.status == OUTBOX_PENDING, OutboxEntry.batch_id.is_(None))
            )
            or 0
        )

    def due_claimed_batch(self, now: datetime) -> str | None:
        """A batch claimed earlier whose write failed (or whose flusher died) and is due again."""
        return self.session.scalar(
            select(OutboxEntry.batch_id)
            .where(
                OutboxEntry.status == OUTBOX_PENDING,
                OutboxEntry.batch_id.is_not(None),
                OutboxEntry.next_attempt_at <= now,
            )
            .order_by(OutboxEntry.id)
            .limit(1)
        )

    def claim(self, batch_id: str, limit: int, lease: timedelta) -> int:
        """Assign up to ``limit`` unclaimed rows, oldest first, to ``batch_id``.

        The lease pushes ``next_attempt_at`` forward so other replicas' flushers leave the
        batch alone while this one writes it; if this process dies, the lease lapses and any
        flusher retries the same batch.
        """
        candidates = (
            select(OutboxEntry.id)
            .where(OutboxEntry.status == OUTBOX_PENDING, OutboxEntry.batch_id.is_(None))
            .order_by(OutboxEntry.id)
            .limit(limit)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        ids = list(self.session.scalars(candidates))
        if not ids:
            return 0
        self.session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id.in_(ids), OutboxEntry.batch_id.is_(None))
            .values(batch_id=batch_id, next_attempt_at=utcnow() + lease)
        )
        return len(ids)

    def load_batch(self, batch_id: str) -> OutboxBatch:
        """Every row of the batch, done ones included: ``mark_done`` settles a batch in several
        transactions, and a retry after a crash half-way must rewrite the batch's file with all
        of its rows, not only those still pending."""
        rows = list(
            self.session.execute(
                select(OutboxEntry.payload, OutboxEntry.attempts)
                # The status term lets the (status, batch_id, id) index find the batch; without
                # it each load scanned the whole table (184 ms at 300k rows).
                .where(
                    OutboxEntry.status.in_((OUTBOX_PENDING, OUTBOX_DONE)),
                    OutboxEntry.batch_id == batch_id,
                )
                .order_by(OutboxEntry.id)
            )
        )
        attempts = max((a for _, a in rows), default=0)
        return OutboxBatch(batch_id, [prediction_from_json(p) for p, _ in rows], attempts)

    def extend_lease(self, batch_id: str, lease: timedelta) -> None:
        self.session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.batch_id == batch_id, OutboxEntry.status == OUTBOX_PENDING)
            .values(next_attempt_at=utcnow() + lease)
        )

    def mark_done(self, batch_id: str, limit: int | None = None) -> int:
        """Mark (at most ``limit`` of) the batch's pending rows done; how many were."""
        condition = (OutboxEntry.batch_id == batch_id) & (OutboxEntry.status == OUTBOX_PENDING)
        if limit is not None:
            first = select(OutboxEntry.id).where(condition).order_by(OutboxEntry.id).limit(limit)
            condition = OutboxEntry.id.in_(first.scalar_subquery())
        result = self.session.execute(
            update(OutboxEntry)
            .where(condition)
            .values(status=OUTBOX_DONE, flushed_at=utcnow(), last_error=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def mark_failed(self, batch_id: str, error: str, retry_at: datetime) -> None:
        self.session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.batch_id == batch_id, OutboxEntry.status == OUTBOX_PENDING)
            .values(
                attempts=OutboxEntry.attempts + 1,
                next_attempt_at=retry_at,
                last_error=error[:2000],
            )
        )

    def purge_done(self, older_than: datetime, limit: int | None = None) -> int:
        """Drop flushed rows (their features now live in the blob store), at most ``limit``."""
        condition = (OutboxEntry.status == OUTBOX_DONE) & (OutboxEntry.flushed_at < older_than)
        if limit is not None:
            # No ORDER BY: it would sort every shipped row for each chunk. The index walks
            # done rows by batch id, and batch ids sort by time, so old ones come first anyway.
            some = select(OutboxEntry.id).where(condition).limit(limit)
            condition = OutboxEntry.id.in_(some.scalar_subquery())
        result = self.session.execute(delete(OutboxEntry).where(condition))
        return int(result.rowcount)  # type: ignore[attr-defined]


class UserDataRepository:
    """Everything SQL holds about one user, for erasure."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def erase(self, user_id: str) -> dict[str, int]:
        """Delete the user's rows from every table; counts per table."""
        counts: dict[str, int] = {}
        # Children first: feedback references predictions.
        for name, model in (
            ("feedback", Feedback),
            ("outbox", OutboxEntry),
            ("predictions", Prediction),
            ("devices", Device),
        ):
            result = self.session.execute(delete(model).where(model.user_id == user_id))
            counts[name] = int(result.rowcount)  # type: ignore[attr-defined]
        counts["personal_history"] = erase_personal_history(self.session, user_id)
        return counts


class JobLockRepository:
    """Named leases such as "one retrain at a time" across all replicas."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def try_acquire(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take the lease if it is free or expired; caller commits. ``False`` if held."""
        now = utcnow()
        taken = insert_ignoring_conflicts(
            self.session,
            JobLock.__table__,  # type: ignore[arg-type]
            [{"name": name, "holder": holder, "acquired_at": now, "expires_at": now + ttl}],
            "name",
        )
        if taken:
            return True
        result = self.session.execute(
            update(JobLock)
            .where(JobLock.name == name, (JobLock.expires_at < now) | (JobLock.holder == holder))
            .values(holder=holder, acquired_at=now, expires_at=now + ttl)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def release(self, name: str, holder: str) -> None:
        self.session.execute(delete(JobLock).where(JobLock.name == name, JobLock.holder == holder))


class DriftReportRepository:
    """Monitoring reports (JSON in SQL; the HTML lives in the blob store under ``html_key``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, report: DriftReport) -> DriftReport:
        """Insert ``report`` and return it with its id assigned (caller commits)."""
        self.session.add(report)
        self.session.flush()
        return report

    def get(self, report_id: int) -> DriftReport | None:
        return self.session.get(DriftReport, report_id)

    def latest(self) -> DriftReport | None:
        return self.session.scalars(
            select(DriftReport).order_by(DriftReport.created_at.desc(), DriftReport.id.desc())
        ).first()

    def since(self, start: datetime) -> list[DriftReport]:
        """Reports created at or after ``start``, oldest first (cool-down, precision history)."""
        return list(
            self.session.scalars(
                select(DriftReport)
                .where(DriftReport.created_at >= start)
                .order_by(DriftReport.created_at, DriftReport.id)
            )
        )
