"""Cohorts shared by the simulator tests: simulated once per session, small enough for seconds."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pandas as pd
import pytest

from fatigue_guard.simulation import CohortConfig, simulate_cohort

USERS = 300
DAYS = 24
DRIFT_START = 12
SEED = 11


@cache
def _cohort(scenario: str, users: int, seed: int) -> pd.DataFrame:
    config = CohortConfig(
        users=users,
        days=DAYS,
        scenario=scenario,
        drift_start=None if scenario == "none" else DRIFT_START,
        seed=seed,
    )
    return simulate_cohort(config)


@pytest.fixture(scope="session")
def cohort() -> Callable[..., pd.DataFrame]:
    """``cohort(scenario, users=USERS, seed=SEED)``: a cached simulation (do not mutate it)."""

    def get(scenario: str = "none", users: int = USERS, seed: int = SEED) -> pd.DataFrame:
        return _cohort(scenario, users, seed)

    return get
