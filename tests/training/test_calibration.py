"""Calibration assessment: cross-fitted calibrators, threshold stability, the decision rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.model.pipeline import DEFAULT_FOREST_PARAMS
from fatigue_guard.training.calibration import (
    CALIBRATED_FORMS,
    FORMS,
    CalibrationAssessment,
    Stability,
    assess_calibration,
    brier_score,
    decide,
    expected_calibration_error,
)
from fatigue_guard.training.data import load_training_data
from fatigue_guard.training.search import oof_scores
from fatigue_guard.training.splits import user_folds
from tests.training.conftest import simulated_cohort

FLOOR, Z = 0.75, 1.645
FIGURES = (
    "brier",
    "ece",
    "precision_std",
    "precision_mean",
    "share_below_floor",
    "recall_mean",
    "no_threshold_folds",
    "alerts_changed_share",
)


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Out-of-fold forest scores by user on a small simulated cohort (~1 s on 2 cores)."""
    frame = load_training_data(simulated_cohort(users=90, days=20, seed=5)).frame
    y = frame[LABEL_COLUMN].to_numpy(dtype=bool)
    folds = user_folds(frame["user_id"].to_numpy(), 3, seed=0)
    oof = oof_scores(
        DEFAULT_FOREST_PARAMS, feature_matrix(frame), y, folds, n_estimators=25, seed=0, n_jobs=2
    )
    return y, oof, folds


def _assess(y: np.ndarray, scores: np.ndarray, folds: list) -> CalibrationAssessment:
    return assess_calibration(y, scores, folds, floor=FLOOR, confidence_z=Z, seed=0)


def test_cross_fitted_calibrators_repair_squashed_scores(scored) -> None:
    y, oof, folds = scored
    squashed = 0.5 + 0.2 * (oof - 0.5)  # same ranking, probabilities crowded around 0.5
    forms = _assess(y, squashed, folds).forms
    for name in CALIBRATED_FORMS:
        assert forms[name].brier <= forms["raw"].brier
        assert forms[name].ece < forms["raw"].ece
    assert forms["raw"].brier > 0.15 and forms["isotonic"].brier < 0.1  # clearly repaired


def test_a_strictly_monotone_calibrator_leaves_every_alert_unchanged(scored) -> None:
    y, oof, folds = scored
    forms = _assess(y, oof, folds).forms
    raw, sigmoid = forms["raw"], forms["sigmoid"]
    assert sigmoid.alerts_changed_share == 0.0
    assert sigmoid.fold_precision == raw.fold_precision
    assert sigmoid.fold_recall == raw.fold_recall
    # The thresholds themselves differ (another scale); only the rows they select are the same.
    assert sigmoid.fold_threshold != raw.fold_threshold


def test_no_calibration_when_stability_does_not_improve(scored) -> None:
    y, oof, folds = scored
    assessment = _assess(y, oof, folds)
    forms = assessment.forms
    chosen, reason = decide(forms["raw"], {"sigmoid": forms["sigmoid"]})
    assert chosen is None
    assert reason.startswith("keep raw") and f"{forms['raw'].precision_std:.4f}" in reason
    # The recorded decision is the rule applied to the recorded figures.
    expected, _ = decide(forms["raw"], {name: forms[name] for name in CALIBRATED_FORMS})
    assert assessment.form == expected and assessment.calibrate == (expected is not None)
    assert assessment.decision == ("calibrate" if expected else "keep_raw")


def test_every_reported_figure_is_finite_and_the_record_is_json(scored) -> None:
    y, oof, folds = scored
    assessment = _assess(y, oof, folds)
    metrics = assessment.metrics()
    expected = {f"calibration.{form}.{figure}" for form in FORMS for figure in FIGURES}
    assert expected | {"calibration.calibrate"} == set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    record = json.loads(json.dumps(assessment.as_dict(), allow_nan=False))
    assert record["decision"] in ("calibrate", "keep_raw") and record["reason"]
    assert set(record["forms"]) == set(FORMS)
    assert len(record["forms"]["isotonic"]["fold_precision"]) == len(folds)
    assert set(assessment.tags()) == {"calibration.decision", "calibration.reason"}


RAW = Stability(precision_std=0.05, share_below_floor=1 / 3, recall_mean=0.30)


@pytest.mark.parametrize(
    ("candidate", "calibrate"),
    [
        (Stability(0.040, 1 / 3, 0.295), True),  # -20 % std, -0.005 recall
        (Stability(0.045, 1 / 3, 0.290), True),  # exactly the margins
        (Stability(0.046, 1 / 3, 0.300), False),  # -8 % std: not enough
        (Stability(0.030, 1 / 3, 0.280), False),  # stabler, but buys it with 0.02 recall
        (Stability(0.030, 2 / 3, 0.300), False),  # stabler, but more folds below the floor
        (Stability(float("nan"), 0.0, 0.300), False),  # spread not measurable
    ],
)
def test_decision_rule(candidate: Stability, calibrate: bool) -> None:
    chosen, reason = decide(RAW, {"isotonic": candidate})
    assert (chosen == "isotonic") is calibrate
    assert reason.startswith("calibrate with isotonic" if calibrate else "keep raw")
    assert "0.0500" in reason  # names the measured figures


def test_decision_rule_prefers_the_larger_drop_and_needs_a_measurable_raw_spread() -> None:
    chosen, _ = decide(
        RAW, {"sigmoid": Stability(0.044, 1 / 3, 0.30), "isotonic": Stability(0.03, 0.0, 0.30)}
    )
    assert chosen == "isotonic"
    unmeasurable = Stability(float("nan"), 0.0, 0.3)
    assert decide(unmeasurable, {"isotonic": Stability(0.01, 0.0, 0.3)})[0] is None


def test_brier_and_ece() -> None:
    y = np.array([0, 0, 1, 1] * 50, dtype=bool)
    assert brier_score(y, y.astype(float)) == 0.0
    assert expected_calibration_error(y, y.astype(float)) == 0.0
    assert brier_score(y, np.full(len(y), 0.5)) == pytest.approx(0.25)
    # Constant 0.9 against a 50 % rate: every bin is off by 0.4.
    assert expected_calibration_error(y, np.full(len(y), 0.9)) == pytest.approx(0.4)
