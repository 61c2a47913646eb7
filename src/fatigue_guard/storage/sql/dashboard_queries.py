"""Read-only queries behind the operator dashboard (``GET /dashboard``).

Nothing here writes: the dashboard reads the data plane the recorder, the monitor and the
lifecycle write, inside a read-only unit of work. Aggregation happens in SQL (``GROUP BY`` a time
bucket), so a day of predictions comes back as a few thousand rows, not millions.

The prediction series group by ``received_at``, the moment the server stored the record: that is
when traffic happened (an edge event measured yesterday and synced now is load now). The column
has no index, so the query reads the table's rows in the window; callers cache the answer for a
few seconds rather than ask again per chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from fatigue_guard.storage.sql.tables import (
    OUTBOX_DONE,
    OUTBOX_PENDING,
    Deployment,
    DriftReport,
    Feedback,
    OutboxEntry,
    Prediction,
    RetrainRun,
)


@dataclass(frozen=True, slots=True)
class PredictionBucket:
    """Predictions stored in ``[start_s, start_s + step)`` (Unix seconds), by where made."""

    start_s: int
    served_by: str
    predictions: int
    alerts: int


@dataclass(frozen=True, slots=True)
class OutboxState:
    """The queue between SQL and the blob store, as it stands."""

    pending: int  # not yet in the blob store (claimed or not)
    unclaimed: int  # not yet picked up by any flusher
    oldest_pending_at: datetime | None  # the record that has waited longest
    failing: int  # pending rows whose batch write failed at least once
    max_attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class ShippedBatch:
    """One batch written to the blob store: when, how many rows, and how long its oldest waited."""

    batch_id: str
    rows: int
    oldest_created_at: datetime
    flushed_at: datetime


def _epoch_seconds(column: Any, dialect: str) -> ColumnElement[int]:
    """Whole Unix seconds of a UTC timestamp column, per backend."""
    if dialect == "sqlite":
        # Stored as naive UTC text (see tables.UTCDateTime): strftime reads it as UTC.
        return cast(func.strftime("%s", column), Integer)
    # EXTRACT gives fractional seconds; floor before the cast, which would round.
    return cast(func.floor(func.extract("epoch", column)), BigInteger)


def _batch_id_floor(moment: datetime) -> str:
    """The smallest batch id claimed at or after ``moment``.

    Batch ids start with their claim time (``YYYYMMDDTHHMMSSffffffZ-...``, see
    ``storage/recording/outbox.new_batch_id``), so a range on ``batch_id`` walks the
    ``(status, batch_id, id)`` index instead of every shipped row.
    """
    return f"{moment:%Y%m%dT%H%M%S}"


class DashboardQueries:
    """Aggregates for the dashboard's panels, inside the caller's (read-only) session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._dialect = session.get_bind().dialect.name

    # -- traffic ----------------------------------------------------------------------------

    def prediction_buckets(
        self, start: datetime, end: datetime, step_s: int
    ) -> list[PredictionBucket]:
        """Predictions received in ``[start, end)``, counted per ``step_s`` bucket and origin."""
        if step_s < 1:
            raise ValueError("step_s must be a whole number of seconds >= 1")
        epoch = _epoch_seconds(Prediction.received_at, self._dialect)
        bucket = ((epoch // step_s) * step_s).label("bucket")
        alerts = func.sum(case((Prediction.alert, 1), else_=0))
        stmt = (
            select(bucket, Prediction.served_by, func.count(), alerts)
            .where(Prediction.received_at >= start, Prediction.received_at < end)
            .group_by(bucket, Prediction.served_by)
            .order_by(bucket)
        )
        return [
            PredictionBucket(int(b), str(served_by), int(n), int(a or 0))
            for b, served_by, n, a in self.session.execute(stmt)
        ]

    def feedback_received(self, start: datetime, end: datetime) -> int:
        """Labels that arrived in ``[start, end)`` (whatever the prediction's own time)."""
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(Feedback)
                .where(Feedback.received_at >= start, Feedback.received_at < end)
            )
            or 0
        )

    # -- the recording pipeline -------------------------------------------------------------

    def outbox_state(self) -> OutboxState:
        pending = OutboxEntry.status == OUTBOX_PENDING
        row = self.session.execute(
            select(
                func.count(),
                func.sum(case((OutboxEntry.batch_id.is_(None), 1), else_=0)),
                func.sum(case((OutboxEntry.attempts > 0, 1), else_=0)),
                func.max(OutboxEntry.attempts),
            ).where(pending)
        ).one()
        oldest = self.session.scalar(
            select(OutboxEntry.created_at).where(pending).order_by(OutboxEntry.id).limit(1)
        )
        last_error = self.session.scalar(
            select(OutboxEntry.last_error)
            .where(pending, OutboxEntry.last_error.is_not(None))
            .order_by(OutboxEntry.id.desc())
            .limit(1)
        )
        return OutboxState(
            pending=int(row[0] or 0),
            unclaimed=int(row[1] or 0),
            oldest_pending_at=oldest,
            failing=int(row[2] or 0),
            max_attempts=int(row[3] or 0),
            last_error=last_error,
        )

    def shipped_batches(self, since: datetime, limit: int = 20_000) -> list[ShippedBatch]:
        """Batches written to the blob store since ``since`` (kept for the outbox retention).

        Shipped rows are purged after ``FATIGUE_GUARD_OUTBOX_RETENTION_S``, so older batches are
        simply not here.
        """
        stmt = (
            select(
                OutboxEntry.batch_id,
                func.count(),
                func.min(OutboxEntry.created_at),
                func.max(OutboxEntry.flushed_at),
            )
            .where(
                OutboxEntry.status == OUTBOX_DONE,
                OutboxEntry.batch_id >= _batch_id_floor(since),
            )
            .group_by(OutboxEntry.batch_id)
            .order_by(OutboxEntry.batch_id)
            .limit(limit)
        )
        out = []
        for batch_id, rows, oldest, flushed in self.session.execute(stmt):
            if oldest is None or flushed is None:
                continue
            out.append(ShippedBatch(str(batch_id), int(rows), _utc(oldest), _utc(flushed)))
        return out

    # -- monitoring and the lifecycle's audit trail -----------------------------------------

    def drift_reports(self, limit: int) -> list[DriftReport]:
        """The latest ``limit`` stored monitoring reports, oldest first."""
        newest = list(
            self.session.scalars(
                select(DriftReport)
                .order_by(DriftReport.created_at.desc(), DriftReport.id.desc())
                .limit(limit)
            )
        )
        return newest[::-1]

    def drift_report(self, report_id: int) -> DriftReport | None:
        return self.session.get(DriftReport, report_id)

    def drift_reports_by_id(self, ids: Sequence[int]) -> dict[int, DriftReport]:
        if not ids:
            return {}
        rows = self.session.scalars(select(DriftReport).where(DriftReport.id.in_(list(ids))))
        return {int(r.id): r for r in rows}

    def retrain_runs(self, limit: int) -> list[RetrainRun]:
        """The latest ``limit`` retraining runs, newest first."""
        return list(
            self.session.scalars(
                select(RetrainRun)
                .order_by(RetrainRun.started_at.desc(), RetrainRun.id.desc())
                .limit(limit)
            )
        )

    def deployments(self, model_name: str, limit: int) -> list[Deployment]:
        """The latest ``limit`` alias moves of ``model_name``, newest first."""
        return list(
            self.session.scalars(
                select(Deployment)
                .where(Deployment.model_name == model_name)
                .order_by(Deployment.created_at.desc(), Deployment.id.desc())
                .limit(limit)
            )
        )


def _utc(value: datetime) -> datetime:
    # Aggregates (min/max) bypass the column type on SQLite and come back as naive text parsed
    # by the driver, or as strings; normalise to aware UTC like every other timestamp.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
