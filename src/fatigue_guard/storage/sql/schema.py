"""Schema migrations: upgrade a database, and refuse to run against an out-of-date one.

Alembic's scripts ship inside the package (``storage/sql/migrations``), so an installed wheel can
migrate its own database with no ``alembic.ini`` on disk: ``fatigue-guard db upgrade`` calls
:func:`upgrade_database`, and the API calls :func:`check_schema_current` at start-up.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from fatigue_guard.config import Settings
from fatigue_guard.storage.sql.engine import create_db_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPGRADE_COMMAND = "fatigue-guard db upgrade"


class SchemaOutOfDate(RuntimeError):
    """The database's schema revision is not the one this code was written for."""

    def __init__(self, current: tuple[str, ...], expected: tuple[str, ...]) -> None:
        self.current = current
        self.expected = expected
        state = ", ".join(current) if current else "empty (never migrated)"
        super().__init__(
            f"database schema is out of date: it is at revision {state}, this version of "
            f"fatigue-guard needs {', '.join(expected)}. Run `{UPGRADE_COMMAND}` "
            "(with the same FATIGUE_GUARD_DATABASE_URL) and start again."
        )


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts; no ini file needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation would eat '%' in passwords.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def expected_heads() -> tuple[str, ...]:
    return tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))


def current_revisions(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as connection:
        return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def upgrade_database(
    settings: Settings, revision: str = "head", engine: Engine | None = None
) -> None:
    """Bring the configured database up to ``revision`` (idempotent: a current DB is untouched)."""
    own_engine = engine is None
    engine = engine or create_db_engine(settings)
    try:
        with engine.begin() as connection:
            config = alembic_config(engine.url.render_as_string(hide_password=False))
            # env.py runs on this connection instead of opening its own.
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if own_engine:
            engine.dispose()


def check_schema_current(engine: Engine) -> None:
    """Raise :class:`SchemaOutOfDate` unless the DB is exactly at this code's head revision."""
    current, expected = current_revisions(engine), expected_heads()
    if current != expected:
        raise SchemaOutOfDate(current, expected)
