"""`train --data` / `score` / `models` / `promote` / `rollback` through typer, end to end."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from fatigue_guard.cli import models as models_cli
from fatigue_guard.cli import train as train_cli
from fatigue_guard.config import get_settings
from fatigue_guard.contract.features import FEATURE_NAMES, LABEL_COLUMN
from fatigue_guard.registry import configure_mlflow
from fatigue_guard.storage import FeedbackRecord, PredictionRecord, build_storage
from tests.training.conftest import synthetic_cohort

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


def _record_live(cohort: pd.DataFrame, labelled: np.ndarray) -> None:
    """Serve ``cohort`` through the data plane under HOME; feedback for the ``labelled`` rows."""
    storage = build_storage(get_settings())
    storage.upgrade()
    try:
        records = [
            PredictionRecord(
                event_id=uuid.uuid4(),
                user_id=row["user_id"],
                measured_at=row["measured_at"].to_pydatetime(),
                received_at=datetime.now(UTC),
                features={n: None if pd.isna(row[n]) else float(row[n]) for n in FEATURE_NAMES},
                fatigue_probability=0.3,
                alert=False,
                threshold=0.5,
                model_name="fatigue-rf",
                model_version="1",
            )
            for row in cohort.to_dict(orient="records")
        ]
        storage.recorder.record_many(records)
        for record, label, has_feedback in zip(
            records, cohort[LABEL_COLUMN], labelled, strict=True
        ):
            if has_feedback:
                storage.record_feedback(
                    FeedbackRecord(
                        record.event_id,
                        record.user_id,
                        bool(label),
                        "self_report",
                        record.measured_at,
                    )
                )
        assert storage.recorder.drain(timeout_s=30)  # features reach the blob feature store
    finally:
        storage.close()


def test_train_live_adds_the_labelled_live_records_in_the_window(
    app: typer.Typer, tmp_path: Path, small_cohort: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hermetic data plane: the SQLite file and blob folder under the test's HOME.
    monkeypatch.delenv("FATIGUE_GUARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING", raising=False)
    get_settings.cache_clear()
    cohort = synthetic_cohort(users=15, days=5, seed=9)  # 300 served predictions
    cohort["user_id"] = "live-" + cohort["user_id"]  # people the baseline does not have
    labelled = np.random.default_rng(0).random(len(cohort)) < 0.75  # the rest got no feedback
    _record_live(cohort, labelled)
    since = pd.Timestamp("2026-01-07", tz="UTC")  # day 2 of 5: earlier records stay out
    in_window = labelled & (cohort["measured_at"] >= since).to_numpy()
    expected = int(in_window.sum())
    assert 0 < expected < labelled.sum()

    data = real_format_csv(small_cohort, tmp_path / "export.csv")
    result = CliRunner().invoke(
        app,
        [
            *("train", "--data", str(data), "--live", "--live-since", "2026-01-07"),
            *("--search-budget-s", "0", "--no-register"),
        ],
    )
    assert result.exit_code == 0, result.output
    live_users = cohort.loc[in_window, "user_id"].nunique()
    assert f"adding {expected:,} labelled records from {live_users:,} users" in result.output

    client = configure_mlflow(get_settings())
    (run,) = client.search_runs([client.get_experiment_by_name("fatigue-guard").experiment_id])
    tags = run.data.tags
    assert tags["data.source"].endswith(f" + live feedback ({expected} labelled)")
    assert int(tags["data.rows"]) == len(small_cohort) + expected
    assert int(tags["data.users"]) == small_cohort["user_id"].nunique() + live_users
    assert tags["data.live.since"] == since.isoformat()
    assert tags["data.live.labelled_rows"] == str(expected)
    lineage = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path="lineage/dataset.json"
            )
        ).read_text()
    )
    assert lineage["rows"] == len(small_cohort) + expected
    assert "live feedback" in lineage["source"]


def test_live_options_are_checked_before_training(
    app: typer.Typer, tmp_path: Path, small_cohort: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FATIGUE_GUARD_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    data = tmp_path / "d.parquet"
    small_cohort.head(50).to_parquet(data, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--data", str(data), "--live-since", "2026-01-01"])
    assert result.exit_code == 2 and "needs --live" in result.output
    result = runner.invoke(app, ["train", "--data", str(data), "--live", "--live-until", "soon"])
    assert result.exit_code == 2 and "ISO 8601" in result.output
    # A data plane nobody migrated: say so instead of training on the baseline alone.
    result = runner.invoke(app, ["train", "--data", str(data), "--live"])
    assert result.exit_code == train_cli.EXIT_STORAGE
    assert "db upgrade" in result.output
