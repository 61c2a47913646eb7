"""Build the data plane from :class:`~fatigue_guard.config.Settings`.

Defaults need nothing running: a SQLite file and a blob folder under ``FATIGUE_GUARD_HOME``.
Setting ``FATIGUE_GUARD_DATABASE_URL`` (PostgreSQL) and
``FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING`` switches to the shared stores that several API
replicas use at scale; nothing else changes.

Typical use in the app's lifespan::

    storage = build_storage(settings)
    storage.check_schema()      # refuses an unmigrated DB: "run `fatigue-guard db upgrade`"
    storage.start()             # outbox flusher + spool replayer threads
    ...
    storage.stop()              # flush what can be flushed, keep the rest for next start
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, text

from fatigue_guard.config import Settings
from fatigue_guard.storage.blob.feature_store import FeatureStore
from fatigue_guard.storage.blob.stores import BlobStore, build_blob_store
from fatigue_guard.storage.keys import IssuedKey
from fatigue_guard.storage.reader import read_live_dataset
from fatigue_guard.storage.recording.outbox import (
    BatchShipper,
    CallRunner,
    FlushPolicy,
    OutboxFlusher,
)
from fatigue_guard.storage.recording.prediction_writer import PredictionWriter
from fatigue_guard.storage.recording.protocol import Recorder
from fatigue_guard.storage.recording.recorder import PredictionRecorder
from fatigue_guard.storage.recording.spool import Spool
from fatigue_guard.storage.records import FeedbackRecord
from fatigue_guard.storage.services import (
    Erasure,
    create_device_key,
    erase_user,
    record_feedback,
    verify_device_key,
)
from fatigue_guard.storage.sql.engine import create_db_engine
from fatigue_guard.storage.sql.schema import check_schema_current, upgrade_database
from fatigue_guard.storage.sql.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from fatigue_guard.storage.sql.writer_lock import WriterLock


def flush_policy(settings: Settings) -> FlushPolicy:
    return FlushPolicy(
        max_records=settings.blob_flush_max_records,
        max_age_s=settings.blob_flush_max_age_s,
        poll_interval_s=settings.outbox_poll_interval_s,
        retry_base_s=settings.outbox_retry_base_s,
        retry_max_s=settings.outbox_retry_max_s,
        lease_s=settings.outbox_lease_s,
        retention_s=settings.outbox_retention_s,
        purge_interval_s=settings.outbox_purge_interval_s,
    )


def build_recorder(
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    writer: PredictionWriter,
    feature_store: FeatureStore,
    shipper: BatchShipper | None = None,
    write_on: CallRunner | None = None,
) -> PredictionRecorder:
    flusher = OutboxFlusher(uow_factory, feature_store, flush_policy(settings), shipper, write_on)
    return PredictionRecorder(
        uow_factory,
        writer,
        flusher,
        Spool(settings.spool_dir),
        replay_interval_s=settings.spool_replay_interval_s,
    )


@dataclass
class Storage:
    """Everything the API and the jobs need from the data plane, built once per process."""

    settings: Settings
    engine: Engine
    uow_factory: UnitOfWorkFactory
    blobs: BlobStore
    feature_store: FeatureStore
    # An API process that owns its storage swaps in a RecorderProcess (settings.recorder_process).
    recorder: Recorder

    # -- lifecycle --------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Apply migrations (``fatigue-guard db upgrade``)."""
        upgrade_database(self.settings, engine=self.engine)

    def check_schema(self) -> None:
        """Raise :class:`~fatigue_guard.storage.sql.schema.SchemaOutOfDate` unless migrated."""
        check_schema_current(self.engine)

    def start(self) -> None:
        self.recorder.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.recorder.stop(timeout_s)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> dict[str, bool]:
        """Whether each store answers right now (``/readyz``)."""
        status = {"database": True, "blob": True}
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            status["database"] = False
        try:
            self.blobs.list("features/v0-ping/")
        except Exception:
            status["blob"] = False
        return status

    # -- use cases --------------------------------------------------------------------------

    def record_feedback(self, record: FeedbackRecord) -> tuple[FeedbackRecord, bool]:
        return record_feedback(self.uow_factory, record)

    def create_device_key(self, user_id: str, label: str | None = None) -> IssuedKey:
        return create_device_key(self.uow_factory, user_id, label)

    def verify_device_key(self, presented: str) -> str | None:
        return verify_device_key(self.uow_factory, presented)

    def erase_user(self, user_id: str) -> Erasure:
        return erase_user(self.uow_factory, self.feature_store, user_id)

    def read_live_dataset(
        self, start: datetime, end: datetime, *, labelled_only: bool = False
    ) -> pd.DataFrame:
        return read_live_dataset(
            self.feature_store, self.uow_factory, start, end, labelled_only=labelled_only
        )


def build_storage(
    settings: Settings,
    *,
    shipper: BatchShipper | None = None,
    write_on: CallRunner | None = None,
) -> Storage:
    """The data plane for ``settings`` (no threads started, no schema touched).

    ``shipper`` and ``write_on`` move the outbox flusher's work out of its thread (see
    :class:`~fatigue_guard.storage.recording.outbox.OutboxFlusher`): the recorder process ships
    batches in a :class:`~fatigue_guard.storage.recording.shipper_process.ShipperProcess`, and its
    commit loop runs the flusher's writes, handed over by a
    :class:`~fatigue_guard.storage.recording.thread_handoff.ThreadHandoff`.
    """
    settings.ensure_home()
    engine = create_db_engine(settings)
    # One turn-taking lock for every SQLite writer of the process (see writer_lock).
    write_lock = WriterLock() if engine.dialect.name == "sqlite" else None
    uow_factory = unit_of_work_factory(engine, write_lock)
    blobs = build_blob_store(settings)
    feature_store = FeatureStore(blobs)
    return Storage(
        settings=settings,
        engine=engine,
        uow_factory=uow_factory,
        blobs=blobs,
        feature_store=feature_store,
        recorder=build_recorder(
            settings,
            uow_factory,
            PredictionWriter(engine, write_lock),
            feature_store,
            shipper,
            write_on,
        ),
    )
