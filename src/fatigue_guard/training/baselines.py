"""Baselines every run is compared with, at the same floor on the same split.

If a forest cannot beat "the user's own recent fatigue rate" or a sleep-debt rule, its complexity
buys nothing; the run is flagged (``beats_baselines = false``) rather than silently registered as
an improvement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.model.threshold import NoThresholdMeetsFloor, select_threshold
from fatigue_guard.training.evaluation import evaluate

_COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
# Below every feature's range, finite (so score differences stay finite).
MISSING_RULE_SCORE = -1e9


@dataclass(frozen=True)
class BaselineResult:
    name: str
    threshold: float | None  # None: never reached the floor on the training period
    holdout: dict[str, float]


def _rule(column: str):
    def score(X: np.ndarray) -> np.ndarray:
        # A missing value cannot raise an alert under a rule: score it lowest.
        return np.nan_to_num(X[:, _COL[column]].astype(float), nan=MISSING_RULE_SCORE)

    return score


def _logistic(seed: int) -> Pipeline:
    # Median + missing-indicator is the standard linear treatment; the -1000 sentinel that suits
    # trees would dominate a linear model.
    return Pipeline(
        [
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            ("scale", StandardScaler()),
            ("lr", LogisticRegression(class_weight="balanced", max_iter=500, random_state=seed)),
        ]
    )


def evaluate_baselines(
    X_train: np.ndarray,
    y_train: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    X_holdout: np.ndarray,
    y_holdout: np.ndarray,
    *,
    floor: float,
    confidence_z: float,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> list[BaselineResult]:
    """Each baseline picks its threshold on the training period (logistic: out-of-fold by user,
    like the forest) with the same margin rule, then is scored on the time hold-out."""
    train_scores: dict[str, np.ndarray] = {}
    holdout_scores: dict[str, np.ndarray] = {}

    oof = np.zeros(len(y_train))
    for fit_idx, val_idx in folds:
        model = _logistic(seed).fit(X_train[fit_idx], y_train[fit_idx])
        oof[val_idx] = model.predict_proba(X_train[val_idx])[:, 1]
    train_scores["logistic_regression"] = oof
    holdout_scores["logistic_regression"] = (
        _logistic(seed).fit(X_train, y_train).predict_proba(X_holdout)[:, 1]
    )
    for name, column in (
        ("sleep_debt_rule", "sleep_debt_7d_h"),
        ("recent_fatigue_rate", "recent_fatigue_rate_14d"),
    ):
        train_scores[name] = _rule(column)(X_train)
        holdout_scores[name] = _rule(column)(X_holdout)

    results = []
    for name, scores in train_scores.items():
        try:
            threshold: float | None = select_threshold(
                y_train, scores, floor, confidence_z=confidence_z, groups=groups
            ).threshold
        except NoThresholdMeetsFloor:
            threshold = None
        if threshold is not None and not np.isfinite(threshold):
            threshold = None
        results.append(
            BaselineResult(
                name, threshold, evaluate(y_holdout, holdout_scores[name], threshold, floor)
            )
        )
    return results
