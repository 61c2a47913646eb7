"""SQL metadata: tables, migrations, repositories and the unit of work (SQLite or PostgreSQL)."""
