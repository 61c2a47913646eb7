"""Fitted pipelines and data sets shared by the edge tests (built once per session: fits cost)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.model.pipeline import build_pipeline
from fatigue_guard.model.vectors import contract_vectors
from fatigue_guard.simulation import CohortConfig, simulate_cohort


@dataclass(frozen=True)
class Split:
    """Train / validation / parity rows; disjoint users for the simulated data."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_parity: np.ndarray


def synthetic_labels(X: np.ndarray, seed: int) -> np.ndarray:
    """A label that depends on values *and* on missingness, so the sentinel splits are used."""
    rng = np.random.default_rng(seed)
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    awake = X[:, col["hours_awake"]] / 72
    short_sleep = 1 - X[:, col["sleep_duration_h"]] / 16
    no_hrv = np.isnan(X[:, col["hrv_rmssd_ms"]]).astype(float)
    debt = np.nan_to_num(X[:, col["sleep_debt_7d_h"]], nan=0.0) / 60
    score = awake + short_sleep + 0.4 * no_hrv + debt + rng.normal(0, 0.25, len(X))
    return (score > 1.3).astype(int)


@pytest.fixture(scope="session")
def uniform_split() -> Split:
    X = contract_vectors(16_000, seed=11)
    y = synthetic_labels(X, seed=12)
    return Split(X[:4000], y[:4000], X[4000:6000], y[4000:6000], X[6000:])


@pytest.fixture(scope="session")
def simulated_split() -> Split:
    """~24k simulated rows of 200 users: 100 users to train, the others to validate / compare."""
    frame = simulate_cohort(CohortConfig(users=200, days=30, seed=7))
    users = frame["user_id"].unique()
    train = frame["user_id"].isin(users[:100]).to_numpy()
    X = feature_matrix(frame)
    y = frame["fatigue_event"].to_numpy().astype(int)
    X_rest, y_rest = X[~train], y[~train]
    cut = len(X_rest) - 10_000
    return Split(X[train], y[train], X_rest[:cut], y_rest[:cut], X_rest[cut:])


def fit_small(split: Split, *, trees: int = 60, depth: int = 10) -> Pipeline:
    return build_pipeline({"max_depth": depth}, n_estimators=trees, seed=0, n_jobs=2).fit(
        split.X_train, split.y_train
    )


@pytest.fixture(scope="session")
def uniform_pipeline(uniform_split: Split) -> Pipeline:
    return fit_small(uniform_split)


@pytest.fixture(scope="session")
def simulated_pipeline(simulated_split: Split) -> Pipeline:
    return fit_small(simulated_split, trees=80, depth=12)
