"""SQL schema of the data plane, as SQLAlchemy 2 typed ORM models.

The SQL DB holds metadata only: raw feature vectors live in the blob feature store, and
reach it through the ``outbox`` table, which is written in the same transaction as the prediction it
belongs to. Alembic migrations (``storage/sql/migrations``) are the source of truth for the deployed
schema; these models must stay in step with them (a test checks it).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so that migrations can drop/alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

OUTBOX_PENDING = "pending"
OUTBOX_DONE = "done"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no timezone type and hands back naive values; PostgreSQL's ``timestamptz`` hands
    back aware ones. Normalising here keeps comparisons and Parquet columns consistent.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone")
        value = value.astimezone(UTC)
        # SQLite stores text: store naive UTC so that lexical order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JsonDocument = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY columns.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Device(Base):
    """A device API key bound to one user. Only a hash of the key's secret is stored."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Prediction(Base):
    """An answered prediction's metadata (no raw features: those go to the feature store)."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_user_measured", "user_id", "measured_at"),)

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    probability: Mapped[float] = mapped_column(Float())
    alert: Mapped[bool] = mapped_column(Boolean())
    threshold: Mapped[float] = mapped_column(Float())
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(100))
    served_by: Mapped[str] = mapped_column(String(16))
    features_version: Mapped[int] = mapped_column(Integer())
    device_model: Mapped[str | None] = mapped_column(String(200))
    platform: Mapped[str | None] = mapped_column(String(100))
    app_version: Mapped[str | None] = mapped_column(String(100))


class Feedback(Base):
    """Ground truth for one prediction; at most one per event_id."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(
        Uuid(), ForeignKey("predictions.event_id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    fatigue_event: Mapped[bool] = mapped_column(Boolean())
    source: Mapped[str] = mapped_column(String(32))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Deployment(Base):
    """History of alias moves (who served what, when and why); rollbacks read it."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200))
    alias: Mapped[str] = mapped_column(String(50))
    from_version: Mapped[str | None] = mapped_column(String(100))
    to_version: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text(), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # Set when the move was made by the retraining job: report -> run -> version -> deployment.
    retrain_run_id: Mapped[int | None] = mapped_column(BigInteger())


class DriftReport(Base):
    """One monitoring run's report (the JSON; the HTML rendering lives in the blob store)."""

    __tablename__ = "drift_reports"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    features_version: Mapped[int] = mapped_column(Integer())
    model_version: Mapped[str | None] = mapped_column(String(100))
    breached: Mapped[bool] = mapped_column(Boolean(), default=False)
    report: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    html_key: Mapped[str | None] = mapped_column(String(500))


class RetrainRun(Base):
    """One retraining job: why it started, how it ended, what it registered."""

    __tablename__ = "retrain_runs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(32), default="running")
    trigger: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text(), default="")
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(100))
    drift_report_id: Mapped[int | None] = mapped_column(BigInteger())
    promoted: Mapped[bool | None] = mapped_column(Boolean())
    details: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)


class JobLock(Base):
    """A named lease (e.g. ``"retrain"``): one holder at a time across every replica.

    The primary key makes acquisition a plain insert/conditional update; ``expires_at`` lets a
    crashed holder's lease lapse instead of blocking forever.
    """

    __tablename__ = "job_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxEntry(Base):
    """A feature record waiting to be written to the blob feature store.

    ``batch_id`` is assigned when a flusher claims the row; a retry rewrites exactly the same
    batch to exactly the same blob key, so a crash between the blob write and marking the rows
    ``done`` can never leave two copies of a record in the store.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_batch", "status", "batch_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid(), unique=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    status: Mapped[str] = mapped_column(String(16), default=OUTBOX_PENDING)
    attempts: Mapped[int] = mapped_column(Integer(), default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    batch_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    flushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ErasedUser(Base):
    """An erasure tombstone: records of this user received up to ``erased_at`` must never be
    stored again, wherever they still wait (another replica's spool, an outbox batch in flight).

    The user is kept as a salted hash, so the list of erased people does not name them.
    """

    __tablename__ = "erased_users"

    user_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PersonalDay(Base):
    """What one local date contributes to a person's baselines: the night that ended on it (the
    first reading of each measure stands for it) and the fatigue reports dated on it.

    The API fills a request's missing baselines from these rows; the user is kept as a salted
    hash (see ``storage.sql.personal_history``), one row per person and date.
    """

    __tablename__ = "personal_days"

    user_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date(), primary_key=True)
    sleep_h: Mapped[float | None] = mapped_column(Float())
    midpoint_h: Mapped[float | None] = mapped_column(Float())
    resting_hr_bpm: Mapped[float | None] = mapped_column(Float())
    hrv_rmssd_ms: Mapped[float | None] = mapped_column(Float())
    reports: Mapped[int] = mapped_column(Integer(), default=0)
    positives: Mapped[int] = mapped_column(Integer(), default=0)


class PersonalMoment(Base):
    """A server-scored prediction's local date (its feedback counts on that date) and which
    baseline features the server computed for it (a bit per feature, contract order of
    ``contract.baselines.BASELINE_FEATURES``; 0: the device sent them all)."""

    __tablename__ = "personal_moments"

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    user_key: Mapped[str] = mapped_column(String(64), index=True)
    day: Mapped[date] = mapped_column(Date())
    server_computed: Mapped[int] = mapped_column(Integer(), default=0)
