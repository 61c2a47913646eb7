"""Alembic environment for fatigue-guard: migrates the database the settings point at.

Called by :func:`fatigue_guard.storage.sql.schema.upgrade_database`, which passes an open connection
in ``config.attributes["connection"]``; otherwise the URL comes from the Alembic config or, failing
that, from :class:`fatigue_guard.config.Settings`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from fatigue_guard.config import Settings
from fatigue_guard.storage.sql.engine import create_db_engine
from fatigue_guard.storage.sql.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or Settings().effective_database_url
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    settings = Settings()
    engine = create_db_engine(settings, config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
