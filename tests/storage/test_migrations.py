"""Migrations bring an empty DB to head on both backends; an unmigrated DB is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from fatigue_guard.storage.sql.engine import create_db_engine
from fatigue_guard.storage.sql.schema import (
    UPGRADE_COMMAND,
    SchemaOutOfDate,
    check_schema_current,
    expected_heads,
    upgrade_database,
)
from fatigue_guard.storage.sql.tables import Base
from tests.storage.conftest import storage_settings

TABLES = {
    "devices",
    "predictions",
    "feedback",
    "deployments",
    "drift_reports",
    "retrain_runs",
    "job_locks",
    "outbox",
}


def test_upgrade_from_empty_creates_every_table(database_url: str, tmp_path: Path) -> None:
    settings = storage_settings(tmp_path, database_url=database_url)
    engine = create_db_engine(settings)
    try:
        upgrade_database(settings)
        assert set(inspect(engine).get_table_names()) >= TABLES
        check_schema_current(engine)  # does not raise
        upgrade_database(settings)  # a second run is a no-op
        check_schema_current(engine)
    finally:
        engine.dispose()


def test_migrations_match_the_models(database_url: str, tmp_path: Path) -> None:
    settings = storage_settings(tmp_path, database_url=database_url)
    engine = create_db_engine(settings)
    try:
        upgrade_database(settings)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_unmigrated_database_is_refused_with_the_fixing_command(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_db_engine(storage_settings(tmp_path, database_url=database_url))
    try:
        with pytest.raises(SchemaOutOfDate) as caught:
            check_schema_current(engine)
        assert UPGRADE_COMMAND in str(caught.value)
        assert "fatigue-guard db upgrade" in str(caught.value)
        assert caught.value.current == ()
        assert caught.value.expected == expected_heads()
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = create_db_engine(storage_settings(tmp_path))
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
