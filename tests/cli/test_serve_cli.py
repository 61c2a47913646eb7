"""``fatigue-guard serve``: what it hands uvicorn, and the multi-worker-on-SQLite warning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fatigue_guard.cli import serve as serve_cli
from fatigue_guard.config import get_settings


@pytest.fixture
def launched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """uvicorn.run replaced by a recorder: the command runs, no server starts."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setenv("FATIGUE_GUARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FATIGUE_GUARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def _serve(*args: str) -> str:
    cli = typer.Typer()
    cli.command("serve")(serve_cli.serve)
    cli.command("unused")(lambda: None)  # two commands: the first argument names one
    result = CliRunner().invoke(cli, ["serve", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_several_workers_on_sqlite_are_warned_about(launched: list[dict[str, Any]]) -> None:
    output = _serve("--workers", "2")
    assert "FATIGUE_GUARD_DATABASE_URL" in output and "SQLite" in output
    assert launched[-1]["workers"] == 2


def test_one_worker_or_postgresql_is_not(
    launched: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "warning" not in _serve("--workers", "1")
    monkeypatch.setenv("FATIGUE_GUARD_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:1/db")
    get_settings.cache_clear()
    assert "warning" not in _serve("--workers", "3")
    assert [call["workers"] for call in launched] == [1, 3]
    assert launched[-1]["access_log"] is False  # request lines would carry user ids
