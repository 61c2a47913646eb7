"""Build SQLAlchemy engines for SQLite (the default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from fatigue_guard.config import Settings


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (the outbox payload of every prediction, reports) through orjson: with the standard
# library's encoder, encoding is the largest single cost of the group-commit writer after SQLite.
# orjson writes NaN as null, which PostgreSQL's JSONB needs anyway.
_JSON = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
# A statement's parameters are user ids and feature values: SQLAlchemy would put them in the text
# of every error it raises (and so in any traceback logged), and in its statement log.
_PRIVATE = {**_JSON, "hide_parameters": True}


def create_db_engine(settings: Settings, url: str | None = None) -> Engine:
    """An engine for ``url`` (default: the settings' effective URL), tuned per backend.

    SQLite: WAL (readers never block the writer), a busy timeout instead of instant "database is
    locked" errors under concurrent writers, and foreign keys on (off by default in SQLite).
    PostgreSQL: a short connect timeout so an unreachable server makes the recorder spool quickly
    instead of hanging the request, and pre-ping so connections survive a server restart.
    """
    parsed = make_url(url or settings.effective_database_url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"timeout": 30.0, "check_same_thread": False},
            pool_pre_ping=False,
            **_PRIVATE,
        )
        synchronous = settings.sqlite_synchronous

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine

    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        # libpq wants whole seconds.
        connect_args["connect_timeout"] = max(1, round(settings.db_connect_timeout_s))
        # A connection whose peer vanished without a reset (a partition, a dead host) is found
        # by TCP keepalives within about 20 s instead of the kernel's two hours.
        connect_args.update(keepalives=1, keepalives_idle=10, keepalives_interval=5)
        connect_args["keepalives_count"] = 2
    return create_engine(
        parsed,
        connect_args=connect_args,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=settings.db_connect_timeout_s,
        **_PRIVATE,
    )
