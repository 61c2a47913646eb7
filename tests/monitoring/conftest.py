"""Session fixtures: one small scorer, and one cohort per scenario with its reference."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from tests.monitoring.helpers import Scorer, days_between, reference_from, train_scorer

ONSET = 21  # first drifted day; days 14-20 are the reference (history features warmed up)
USERS = 1000


@dataclass(frozen=True)
class Scenario:
    name: str
    reference: ReferenceProfile
    # The first 7-day window mostly after the onset: 2 days before it, 5 after.
    window: pd.DataFrame
    threshold: float


@pytest.fixture(scope="session")
def scorer() -> Scorer:
    return train_scorer()


@pytest.fixture(scope="session")
def scenario_cache() -> dict[str, Scenario]:
    return {}


@pytest.fixture
def scenario_data(scorer: Scorer, scenario_cache: dict[str, Scenario]):  # type: ignore[no-untyped-def]
    def get(name: str) -> Scenario:
        if name not in scenario_cache:
            cohort = simulate_cohort(
                CohortConfig(users=USERS, days=ONSET + 7, scenario=name, drift_start=ONSET, seed=7)
            )
            scored = scorer.score(cohort)
            scenario_cache[name] = Scenario(
                name,
                reference_from(days_between(scored, 14, ONSET)),
                days_between(scored, ONSET - 2, ONSET + 5),
                scorer.threshold,
            )
        return scenario_cache[name]

    return get
