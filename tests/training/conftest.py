"""Fixtures for training/registry tests: small simulated cohorts and fast settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURE_NAMES, LABEL_COLUMN

try:
    from fatigue_guard.simulation import simulate_cohort
    from fatigue_guard.simulation.config import CohortConfig
except ImportError:  # the simulator lands separately; fall back to a synthetic cohort
    simulate_cohort = None


def fast_settings(home: Path, **overrides: object) -> Settings:
    """Settings under a temporary HOME with a small, quick forest (tests run on 2 shared cores)."""
    values: dict[str, object] = {
        "home": home,
        # Hermetic: the SQLite store under ``home`` even if the shell exports an MLflow server.
        "MLFLOW_TRACKING_URI": None,
        "n_estimators": 30,
        "cv_folds": 2,
        "search_budget_s": 0.0,
        **overrides,
    }
    return Settings(**values)


def synthetic_cohort(users: int, days: int, seed: int) -> pd.DataFrame:
    """A contract-format table whose label depends on sleep debt, hours awake and person risk."""
    rng = np.random.default_rng(seed)
    n = users * days * 4
    user = np.repeat(np.arange(users), days * 4)
    day = np.tile(np.repeat(np.arange(days), 4), users)
    frame = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": [f"u{u}" for u in user],
            "measured_at": pd.Timestamp("2026-01-05", tz="UTC")
            + pd.to_timedelta(day, unit="D")
            + pd.to_timedelta(np.tile([8, 12, 16, 21], users * days), unit="h"),
        }
    )
    risk = rng.normal(0, 1, users)[user]
    debt = rng.normal(3, 4, n).clip(-30, 60)
    awake = rng.uniform(0, 18, n)
    frame["sleep_duration_h"] = rng.uniform(4, 9, n)
    frame["sleep_efficiency"] = rng.uniform(0.6, 1.0, n)
    frame["resting_hr_bpm"] = rng.uniform(45, 80, n)
    frame["hours_awake"] = awake
    frame["local_hour"] = rng.uniform(0, 23.9, n)
    frame["sleep_debt_7d_h"] = debt
    frame["recent_fatigue_rate_14d"] = (0.1 + 0.05 * risk + rng.normal(0, 0.03, n)).clip(0, 1)
    for name in FEATURE_NAMES:
        if name not in frame:
            frame[name] = np.nan
    hour = frame["local_hour"].to_numpy()
    # Non-linear on purpose (a night-time, long-awake interaction): trees should beat a line.
    night_and_long_awake = ((hour < 6) | (hour > 22)) & (awake > 12)
    logit = -3.4 + 0.3 * debt + 0.05 * awake + 0.9 * risk + 2.5 * night_and_long_awake
    frame[LABEL_COLUMN] = rng.random(n) < 1 / (1 + np.exp(-logit))
    return frame


def simulated_cohort(users: int, days: int, seed: int) -> pd.DataFrame:
    """The project's cohort simulator when it is installed, else the synthetic stand-in."""
    if simulate_cohort is None:
        return synthetic_cohort(users, days, seed)
    return simulate_cohort(CohortConfig(users=users, days=days, moments_per_day=4, seed=seed))


@pytest.fixture(scope="session")
def small_cohort() -> pd.DataFrame:
    """~7.7k synthetic rows with a known, learnable signal: for testing the mechanics quickly.

    (Model quality on the real simulator is tested separately, on a larger cohort.)
    """
    return synthetic_cohort(users=80, days=24, seed=3)
