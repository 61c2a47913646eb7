"""Session fixtures: one small scorer, one cohort per scenario with its reference, and the
monitor's reports on real-data windows."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.monitoring import MonitorReport, run_monitor
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from tests.monitoring.helpers import (
    Scorer,
    days_between,
    monitor_settings,
    reference_from,
    train_scorer,
)
from tests.monitoring.pmdata import RealConfig, load_person_days, real_cohort

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


@pytest.fixture(scope="session")
def person_days() -> pd.DataFrame:
    return load_person_days()


@pytest.fixture(scope="session")
def judge_real(person_days: pd.DataFrame):  # type: ignore[no-untyped-def]
    """``judge(situation, seed, churn=0.1)``: the monitor's report on that real-data window
    (cached: several tests read the same run)."""
    reports: dict[tuple[str, int, float], MonitorReport] = {}

    def judge(situation: str, seed: int, churn: float = 0.1) -> MonitorReport:
        key = (situation, seed, churn)
        if key not in reports:
            cohort = real_cohort(RealConfig(situation, seed, churn=churn), person_days)
            reports[key] = run_monitor(
                monitor_settings(),
                current=cohort.window,
                reference=ReferenceProfile.from_frame(cohort.reference),
                # No model scores this suite: the threshold only stands in for the production
                # model's, so that the monitor needs no registry.
                threshold=0.5,
                store=False,
                html=False,
            )
        return reports[key]

    return judge
