"""Shared helpers for the simulator tests: the production-like baseline model and its scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import precision_recall_curve, roc_auc_score
from sklearn.model_selection import GroupShuffleSplit

from fatigue_guard.contract.features import FEATURE_NAMES, LABEL_COLUMN

# Production imputes nulls with a constant sentinel (keeps ONNX parity with the server).
MISSING_SENTINEL = -1000.0
PRECISION_FLOOR = 0.75


@dataclass(frozen=True)
class Scores:
    roc_auc: float
    recall_at_floor: float


def features(frame: pd.DataFrame) -> np.ndarray:
    x = frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    return np.where(np.isnan(x), MISSING_SENTINEL, x)


def fit_forest(
    frame: pd.DataFrame, *, trees: int = 200, max_samples: float | None = None, seed: int = 0
) -> RandomForestClassifier:
    """A plain forest as production trains it (sentinel-imputed nulls, min 20 per leaf).

    ``max_samples`` (bootstrap share per tree) only keeps tests fast on shared CI cores.
    """
    model = RandomForestClassifier(
        n_estimators=trees,
        min_samples_leaf=20,
        max_samples=max_samples,
        n_jobs=2,
        random_state=seed,
    )
    return model.fit(features(frame), frame[LABEL_COLUMN].to_numpy())


def score(model: RandomForestClassifier, frame: pd.DataFrame) -> Scores:
    y = frame[LABEL_COLUMN].to_numpy()
    p = model.predict_proba(features(frame))[:, 1]
    precision, recall, _ = precision_recall_curve(y, p)
    reachable = recall[precision >= PRECISION_FLOOR]
    return Scores(
        roc_auc=float(roc_auc_score(y, p)),
        recall_at_floor=float(reachable.max()) if reachable.size else 0.0,
    )


def split_by_user(
    frame: pd.DataFrame, *, test_size: float = 0.3, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train_idx, test_idx = next(splitter.split(frame, groups=frame["user_id"]))
    return frame.iloc[train_idx], frame.iloc[test_idx]


def day_of_row(frame: pd.DataFrame, moments_per_day: int, first_day: int = 0) -> np.ndarray:
    """The simulated day each row belongs to (rows are ordered by user, then time).

    Joiners' rows start at their joining day, so pass ``first_day`` per block when needed.
    """
    return first_day + frame.groupby("user_id", sort=False).cumcount().to_numpy() // moments_per_day
