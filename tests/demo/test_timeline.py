"""The loop's simulated calendar: phases in order, nothing sent twice, the same cohort any day."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pandas as pd
import pytest

from fatigue_guard.demo.timeline import LoopConfig, simulate_timeline

SMALL = LoopConfig(users=30, train_days=14, normal_days=1, drift_days=3, live_days=1, after_days=1)


def test_phases_partition_the_cohort_in_time_order() -> None:
    timeline = simulate_timeline(SMALL, today=date(2026, 12, 3))
    parts = [
        timeline.baseline,
        timeline.normal,
        timeline.drift,
        timeline.live,
        timeline.after,
    ]
    assert sum(len(p) for p in parts) == len(timeline.cohort)
    for earlier, later in itertools.pairwise(parts):
        assert earlier["measured_at"].max() < later["measured_at"].min()
    assert timeline.monitor_end == timeline.day(SMALL.drift_start + SMALL.drift_days)
    assert timeline.monitor_window == timedelta(days=SMALL.normal_days + SMALL.drift_days)
    # The older cohort joins when the drift begins: in the drift phase, never before it.
    joiners = timeline.joiners
    assert joiners and joiners <= set(timeline.drift["user_id"])
    assert not joiners & set(timeline.normal["user_id"])


def test_the_cohort_ends_in_the_past_and_is_the_same_whatever_the_day() -> None:
    monday = simulate_timeline(SMALL, today=date(2026, 11, 30))
    later = [simulate_timeline(SMALL, today=date(2026, 11, 30) + timedelta(days=d)) for d in (3, 6)]
    for timeline in (monday, *later):
        assert timeline.start.weekday() == 0  # weekdays shape the simulated schedules
    for timeline, today in zip((monday, *later), (0, 3, 6), strict=True):
        last = timeline.cohort["measured_at"].max()
        run_day = pd.Timestamp(date(2026, 11, 30) + timedelta(days=today), tz="UTC")
        # Within a week before the run; a late evening's moment may fall after midnight.
        assert run_day - timedelta(days=8) < last < run_day + timedelta(hours=12)
    features = ["user_id", "sleep_duration_h", "hrv_rmssd_ms", "fatigue_event"]
    for timeline in later:
        pd.testing.assert_frame_equal(
            timeline.cohort[features].reset_index(drop=True),
            monday.cohort[features].reset_index(drop=True),
        )


def test_unknown_scenarios_and_empty_phases_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        LoopConfig(scenario="bogus")
    with pytest.raises(ValueError, match="at least one day"):
        LoopConfig(live_days=0)
