"""The model: a constant-sentinel imputer in front of a RandomForest.

Why a sentinel rather than scikit-learn's native NaN routing: the forest can isolate "missing" in
one split (a tracker without HRV is information, and mean-imputing HRV would invent values), and
unlike the native routing it converts exactly to ONNX (``SimpleImputer`` -> ONNX ``Imputer``;
skl2onnx mis-converts native NaN routing, measured max probability difference 0.5). Edge and
server must agree on nulls, so the sentinel is part of the model, not of the caller.
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

# Below every feature's contract minimum (the lowest is sleep_debt_7d_h at -30).
MISSING_SENTINEL = -1000.0

DEFAULT_FOREST_PARAMS: dict[str, Any] = {
    "max_depth": 14,
    "min_samples_leaf": 20,
    "max_features": "sqrt",
    "class_weight": None,
    # Half-size bootstrap samples: about 2x faster fits and, measured on the simulator, no loss
    # of recall at the floor (the trees decorrelate more).
    "max_samples": 0.5,
}


def build_pipeline(
    params: dict[str, Any] | None = None,
    *,
    n_estimators: int = 100,
    seed: int = 0,
    n_jobs: int = 2,
) -> Pipeline:
    """A fresh, unfitted pipeline; ``params`` override :data:`DEFAULT_FOREST_PARAMS`."""
    forest_params = {**DEFAULT_FOREST_PARAMS, **(params or {})}
    return Pipeline(
        [
            (
                "missing",
                SimpleImputer(
                    strategy="constant", fill_value=MISSING_SENTINEL, keep_empty_features=True
                ),
            ),
            (
                "forest",
                RandomForestClassifier(
                    n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs, **forest_params
                ),
            ),
        ]
    )


def positive_proba(model: Any, X: Any) -> Any:
    """Probability of the fatigue class, whatever the column order of ``classes_``."""
    proba = model.predict_proba(X)
    classes = list(model.classes_)
    if True in classes:
        return proba[:, classes.index(True)]
    return proba[:, classes.index(1)] if 1 in classes else proba[:, -1]
