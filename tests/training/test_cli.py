"""`train --data` / `score` / `models` / `promote` / `rollback` through typer, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from fatigue_guard.cli import models as models_cli
from fatigue_guard.cli import train as train_cli
from fatigue_guard.config import get_settings
from fatigue_guard.contract.features import LABEL_COLUMN

ENTIRELY_NULL = ["hrv_rmssd_ms", "hrv_rmssd_ratio", "deep_sleep_pct", "rem_sleep_pct"]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("FATIGUE_GUARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FATIGUE_GUARD_N_ESTIMATORS", "25")
    monkeypatch.setenv("FATIGUE_GUARD_CV_FOLDS", "2")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps tables to the terminal width
    get_settings.cache_clear()
    cli = typer.Typer()
    cli.command("train")(train_cli.train)
    cli.command("score")(train_cli.score)
    cli.command("models")(models_cli.models)
    cli.command("promote")(models_cli.promote)
    cli.command("rollback")(models_cli.rollback)
    yield cli
    get_settings.cache_clear()


def real_format_csv(frame: pd.DataFrame, path: Path) -> Path:
    """CSV as a user would export it: some optional columns present but entirely empty,
    one optional column absent, labels as 0/1."""
    out = frame.drop(columns=["steps_24h"]).copy()
    out[ENTIRELY_NULL] = np.nan
    out[LABEL_COLUMN] = out[LABEL_COLUMN].astype(int)
    out.to_csv(path, index=False)
    return path


def test_train_then_score_on_a_real_format_csv(
    app: typer.Typer, tmp_path: Path, small_cohort: pd.DataFrame
) -> None:
    runner = CliRunner()
    data = real_format_csv(small_cohort, tmp_path / "export.csv")
    result = runner.invoke(app, ["train", "--data", str(data), "--search-budget-s", "0"])
    assert result.exit_code == 0, result.output
    assert "production" in result.output and "baseline" in result.output

    to_score = small_cohort.head(200).drop(columns=[LABEL_COLUMN]).copy()
    to_score.loc[to_score.index[:3], "sleep_efficiency"] = 1.7  # breaks the contract
    inp = tmp_path / "in.csv"
    to_score.to_csv(inp, index=False)
    out = tmp_path / "scored.csv"
    rejected = tmp_path / "rejected.csv"
    result = runner.invoke(
        app, ["score", "--data", str(inp), "--out", str(out), "--rejected", str(rejected)]
    )
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    assert len(scored) == 197 and len(pd.read_csv(rejected)) == 3
    assert {"fatigue_probability", "alert", "model_version"} <= set(scored.columns)
    assert scored["fatigue_probability"].between(0, 1).all()
    assert (scored["model_version"] == 1).all()
    assert "sleep_efficiency" in result.output  # the report names the field

    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "production" in result.output


def test_train_exits_2_when_no_threshold_meets_the_floor(
    app: typer.Typer, tmp_path: Path, small_cohort: pd.DataFrame
) -> None:
    noise = small_cohort.copy()
    noise[LABEL_COLUMN] = np.random.default_rng(0).permutation(noise[LABEL_COLUMN].to_numpy())
    data = tmp_path / "noise.parquet"
    noise.to_parquet(data, index=False)
    result = CliRunner().invoke(
        app, ["train", "--data", str(data), "--precision-floor", "0.9", "--search-budget-s", "0"]
    )
    assert result.exit_code == 2
    assert "No model registered" in result.output
    result = CliRunner().invoke(
        app, ["score", "--data", str(data), "--out", str(tmp_path / "x.csv")]
    )
    assert result.exit_code == 4  # nothing to score with


def test_rollback_without_history_is_a_clear_error(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["rollback"])
    assert result.exit_code == 4
    assert "no production version" in result.output
