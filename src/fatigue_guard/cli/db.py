"""``fatigue-guard db``: schema migrations."""

from __future__ import annotations

import typer
from rich.console import Console

db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")
console = Console()


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or migrate the SQL schema to the latest revision."""
    from fatigue_guard.config import get_settings
    from fatigue_guard.storage.sql.schema import upgrade_database

    settings = get_settings()
    settings.ensure_home()
    upgrade_database(settings, revision)
    console.print(f"[green]database at {revision}[/green]")


@db_app.command("current")
def current() -> None:
    """Show the schema revision the database is at."""
    from fatigue_guard.config import get_settings
    from fatigue_guard.storage.sql.engine import create_db_engine
    from fatigue_guard.storage.sql.schema import current_revisions, expected_heads

    engine = create_db_engine(get_settings())
    console.print(f"database: {current_revisions(engine) or '(empty)'}; code: {expected_heads()}")
