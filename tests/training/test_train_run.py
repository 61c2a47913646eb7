"""One training run end to end, checked through MLflow's own client."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION, LABEL_COLUMN
from fatigue_guard.lifecycle.registration import train_and_register
from fatigue_guard.model.threshold import NoThresholdMeetsFloor
from fatigue_guard.registry import (
    PRODUCTION,
    configure_mlflow,
    get_model_by_alias,
    load_golden,
    load_onnx_bytes,
    load_pipeline,
)
from fatigue_guard.training import TooManyInvalidRows
from fatigue_guard.training.data import file_sha256
from tests.training.conftest import fast_settings


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, small_cohort: pd.DataFrame):
    home = tmp_path_factory.mktemp("train-home")
    data = home / "cohort.parquet"
    small_cohort.to_parquet(data, index=False)
    settings = fast_settings(home)
    result = train_and_register(settings, data, seed=0, n_jobs=2)
    return settings, result, data


def artifact_paths(client: mlflow.MlflowClient, run_id: str, path: str = "") -> set[str]:
    out: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def test_first_model_is_registered_as_production_with_its_threshold(trained) -> None:
    settings, result, _ = trained
    assert result.alias == PRODUCTION
    production = get_model_by_alias(settings)
    assert production == result.registered
    assert production.name == "fatigue-rf"
    assert production.threshold == pytest.approx(result.threshold)
    assert production.precision_floor == pytest.approx(0.75)
    assert production.features_version == FEATURES_VERSION


def test_run_logs_metrics_params_and_lineage(trained) -> None:
    settings, result, data = trained
    client = configure_mlflow(settings)
    run = client.get_run(result.run_id)
    metrics, tags, params = run.data.metrics, run.data.tags, run.data.params
    for name in ("precision", "recall", "f1", "pr_auc", "roc_auc", "recall_at_floor", "alert_rate"):
        assert metrics[name] == pytest.approx(result.metrics["holdout_time"][name])
        assert f"oof_user.{name}" in metrics  # the unseen-user view
    assert metrics["threshold"] == pytest.approx(result.threshold)
    assert metrics["threshold.precision_lower_bound"] >= 0.75
    for baseline in ("logistic_regression", "sleep_debt_rule", "recent_fatigue_rate"):
        assert f"baseline.{baseline}.recall_at_floor" in metrics
    assert params["precision_floor"] == "0.75"
    assert params["forest.max_depth"] and params["cv_folds"] == "2"
    assert tags["data.sha256"] == file_sha256(data)
    assert tags["data.source"] == data.resolve().as_uri()
    assert int(tags["data.rows"]) == result.rows
    assert int(tags["data.users"]) == 80
    assert len(tags["git_commit"]) in (40, 7) or tags["git_commit"] == "unknown"
    assert tags["status"] == "registered"
    assert tags["beats_baselines"] in ("true", "false")
    # Calibration is measured on every run; the decision travels as tags and in the result.
    assert tags["calibration.decision"] in ("calibrate", "keep_raw")
    assert tags["calibration.decision"] == result.calibration["decision"]
    assert tags["calibration.reason"] == result.calibration["reason"]
    for form in ("raw", "sigmoid", "isotonic"):
        assert f"calibration.{form}.brier" in metrics
        assert f"calibration.{form}.precision_std" in metrics


def test_run_logs_artifacts(trained) -> None:
    settings, result, _ = trained
    client = configure_mlflow(settings)
    paths = artifact_paths(client, result.run_id)
    expected = {
        "plots/pr_curve.png",
        "plots/calibration.png",
        "evaluation/confusion_matrix.json",
        "evaluation/permutation_importance.csv",
        "evaluation/per_user_recall.json",
        "lineage/dataset.json",
        "reference/drift_profile.json",
        "data_quality/invalid_rows.json",
        "golden/golden.json",
        "holdout/holdout.parquet",
        "threshold.json",
        "search/trials.json",
        "calibration/assessment.json",
    }
    assert expected <= paths
    # Artifacts live under HOME, not in ./mlruns of whatever directory the test runs from.
    assert any(settings.mlflow_artifact_root.rglob("pr_curve.png"))
    profile = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=result.run_id, artifact_path="reference/drift_profile.json"
            )
        ).read_text()
    )
    assert set(profile["features"]) == set(FEATURE_NAMES)
    assert profile["rows"] == result.metrics["holdout_time"]["rows"]


def test_pyfunc_returns_the_pipelines_probabilities(trained) -> None:
    settings, result, _ = trained
    model = result.registered
    pipeline = load_pipeline(settings, model)
    golden = load_golden(settings, model)
    assert golden is not None
    X, expected = golden
    assert X.shape == (64, len(FEATURE_NAMES)) and X.dtype == np.float32
    assert np.isnan(X).any()  # the golden set exercises missing values
    np.testing.assert_allclose(pipeline.predict_proba(X)[:, 1], expected, atol=1e-12)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{model.name}/{model.version}")
    np.testing.assert_allclose(np.asarray(pyfunc.predict(X)), pipeline.predict_proba(X), atol=1e-12)


def test_onnx_is_logged_when_the_exporter_exists(trained) -> None:
    pytest.importorskip("fatigue_guard.model.onnx_export")
    ort = pytest.importorskip("onnxruntime")
    settings, result, _ = trained
    onnx_bytes = load_onnx_bytes(settings, result.registered)
    assert onnx_bytes
    X, expected = load_golden(settings, result.registered)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: X})
    probabilities = next(o for o in outputs if getattr(o, "ndim", 0) == 2)
    np.testing.assert_allclose(probabilities[:, 1], expected, atol=1e-5)


def test_no_threshold_meeting_the_floor_logs_the_run_and_registers_nothing(
    tmp_path: Path, small_cohort: pd.DataFrame
) -> None:
    settings = fast_settings(tmp_path)
    noise = small_cohort.copy()
    noise[LABEL_COLUMN] = np.random.default_rng(0).permutation(noise[LABEL_COLUMN].to_numpy())
    with pytest.raises(NoThresholdMeetsFloor) as info:
        train_and_register(settings, noise, precision_floor=0.9)
    exc = info.value
    assert exc.run_id and exc.attainable["best_precision"] < 0.9
    client = configure_mlflow(settings)
    run = client.get_run(exc.run_id)
    assert run.data.tags["status"] == "no_threshold_meets_floor"
    assert {"attainable.best_precision", "attainable.recall_at_precision_0.5"} <= set(
        run.data.metrics
    )
    assert client.search_registered_models() == []
    assert get_model_by_alias(settings) is None


def test_too_many_invalid_rows_stops_the_run(tmp_path: Path, small_cohort: pd.DataFrame) -> None:
    bad = small_cohort.copy()
    bad.loc[bad.index[:800], "sleep_duration_h"] = 18.0  # "18-hour sleeps": ~10 % of rows
    with pytest.raises(TooManyInvalidRows) as info:
        train_and_register(fast_settings(tmp_path), bad)
    report = info.value.report
    assert report.invalid_rows == 800
    assert report.violations[0].field == "sleep_duration_h"
    assert "out of range" in str(info.value)
