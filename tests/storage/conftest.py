"""Helpers for the data-plane tests: settings for a temp HOME, records, built storage."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.storage.factory import Storage, build_storage
from fatigue_guard.storage.records import PredictionRecord
from fatigue_guard.storage.sql.tables import Prediction

BASE_TIME = datetime(2025, 3, 1, 21, 30, tzinfo=UTC)


def make_record(
    user_id: str = "user-1",
    *,
    event_id: uuid.UUID | None = None,
    measured_at: datetime | None = None,
    probability: float | None = None,
    served_by: str = "server",
    seed: int | None = None,
) -> PredictionRecord:
    rng = random.Random(seed)
    features: dict[str, float | None] = {
        name: round(rng.uniform(0, 1), 4) for name in FEATURE_NAMES
    }
    features["hrv_rmssd_ms"] = None  # optional features may be missing
    p = rng.random() if probability is None else probability
    return PredictionRecord(
        event_id=event_id or uuid.uuid4(),
        user_id=user_id,
        measured_at=measured_at or BASE_TIME,
        received_at=datetime.now(UTC),
        features=features,
        fatigue_probability=p,
        alert=p >= 0.5,
        threshold=0.5,
        model_name="fatigue-rf",
        model_version="7",
        served_by=served_by,  # type: ignore[arg-type]
        device_model="Pixel 8",
        platform="android",
        app_version="1.4.0",
    )


def spread_records(n: int, users: int = 5) -> list[PredictionRecord]:
    """``n`` records over a few users and three days (so batches span date partitions)."""
    return [
        make_record(
            f"user-{i % users}", measured_at=BASE_TIME + timedelta(hours=7 * i % 72), seed=i
        )
        for i in range(n)
    ]


def prediction_count(storage: Storage) -> int:
    with storage.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Prediction)).scalar_one())


def storage_settings(home: Path, **overrides: object) -> Settings:
    """Settings with fast flushing and retries, everything under ``home``."""
    values: dict[str, object] = {
        "home": home,
        "blob_flush_max_records": 50,
        "blob_flush_max_age_s": 0.2,
        "outbox_poll_interval_s": 0.05,
        "outbox_retry_base_s": 0.1,
        "outbox_retry_max_s": 1.0,
        "spool_replay_interval_s": 0.2,
        "db_connect_timeout_s": 2.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


StorageFactory = Callable[..., Storage]


@pytest.fixture
def storage_factory(tmp_path: Path) -> Iterator[StorageFactory]:
    """Build (and migrate) storages; all are stopped and closed after the test."""
    built: list[Storage] = []

    def make(database_url: str, *, migrate: bool = True, **overrides: object) -> Storage:
        home = tmp_path / f"home-{len(built)}"
        storage = build_storage(storage_settings(home, database_url=database_url, **overrides))
        built.append(storage)
        if migrate:
            storage.upgrade()
        return storage

    yield make
    for storage in built:
        storage.stop(timeout_s=2)
        storage.close()


@pytest.fixture
def storage(database_url: str, storage_factory: StorageFactory) -> Storage:
    """A migrated storage on each DB backend, local blob folder, threads not started.

    ``database_url`` comes first so that the database outlives the storage at teardown.
    """
    return storage_factory(database_url)
