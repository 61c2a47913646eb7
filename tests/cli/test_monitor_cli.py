"""`monitor run --current ... --no-trigger` and `monitor report --last` through typer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fatigue_guard.cli.monitor import monitor_app, parse_window
from fatigue_guard.config import get_settings
from fatigue_guard.storage.factory import build_storage
from tests.monitoring.conftest import Scenario


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FATIGUE_GUARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    storage = build_storage(get_settings())
    storage.upgrade()
    storage.close()
    yield tmp_path
    get_settings.cache_clear()


def test_run_on_a_file_then_fetch_the_report(
    home: Path, scenario_data: Callable[[str], Scenario]
) -> None:
    scenario = scenario_data("seasonal_sleep")
    current = home / "current.parquet"
    scenario.window.drop(columns=["alert"]).to_parquet(current)
    reference = home / "profile.json"
    reference.write_text(scenario.reference.to_json())
    out = home / "out" / "report.json"
    runner = CliRunner()
    args = ["run", "--current", str(current), "--reference", str(reference), "--threshold",
            str(scenario.threshold), "--no-trigger", "--json", str(out)]  # fmt: skip
    result = runner.invoke(monitor_app, args)
    assert result.exit_code == 0, result.output
    assert "BREACH" in result.output and "sleep_efficiency" in result.output
    doc = json.loads(out.read_text())
    assert doc["decision"]["breach"] and not doc["decision"]["triggered"]
    assert doc["id"] is not None

    html_out = home / "fetched.html"
    result = runner.invoke(monitor_app, ["report", "--last", "--out", str(html_out)])
    assert result.exit_code == 0, result.output
    assert html_out.read_text().startswith("<!doctype html>")
    result = runner.invoke(monitor_app, ["report", "--id", "999"])
    assert result.exit_code == 4


def test_parse_window() -> None:
    assert parse_window("7d").days == 7 and parse_window("36h").total_seconds() == 36 * 3600
