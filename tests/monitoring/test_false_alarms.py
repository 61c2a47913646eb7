"""A stationary population must not trigger: 30 consecutive weekly windows x 5 seeds."""

from __future__ import annotations

import pytest

from fatigue_guard.monitoring import run_monitor
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from tests.monitoring.helpers import Scorer, days_between, monitor_settings, reference_from

WINDOWS, SEEDS, USERS = 30, 5, 150  # ~4,200 rows per window: modest, over min_samples


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SEEDS))
def test_none_scenario_never_triggers(scorer: Scorer, seed: int) -> None:
    settings = monitor_settings()
    cohort = scorer.score(
        simulate_cohort(CohortConfig(users=USERS, days=28 + 7 * WINDOWS, seed=seed))
    )
    reference = reference_from(days_between(cohort, 14, 28))
    breaches = []
    for w in range(WINDOWS):
        window = days_between(cohort, 28 + 7 * w, 35 + 7 * w)
        assert len(window) >= settings.monitor_min_samples
        report = run_monitor(
            settings,
            current=window,
            reference=reference,
            threshold=scorer.threshold,
            store=False,
            html=False,
        )
        if report.decision.breach:
            breaches.append((w, report.decision.reasons))
    assert breaches == []
