"""Physiology sanity: the simulated body reacts to sleep loss and wakefulness as bodies do."""

from __future__ import annotations

from fatigue_guard.contract.features import LABEL_COLUMN


def test_rmssd_and_sleep_duration_fall_with_sleep_debt(cohort) -> None:
    frame = cohort().dropna(subset=["sleep_debt_7d_h", "hrv_rmssd_ratio"])
    low, high = frame["sleep_debt_7d_h"].quantile([0.25, 0.75])
    rested, indebted = (
        frame[frame["sleep_debt_7d_h"] <= low],
        frame[frame["sleep_debt_7d_h"] >= high],
    )
    assert indebted["hrv_rmssd_ratio"].mean() < rested["hrv_rmssd_ratio"].mean() - 0.02
    assert indebted["hrv_rmssd_ms"].mean() < rested["hrv_rmssd_ms"].mean()
    assert indebted["sleep_duration_h"].mean() < rested["sleep_duration_h"].mean() - 0.5
    assert indebted["resting_hr_delta_bpm"].mean() > rested["resting_hr_delta_bpm"].mean()


def test_fatigue_rate_rises_with_hours_awake_at_night(cohort) -> None:
    frame = cohort()
    night = frame[(frame["local_hour"] >= 22) | (frame["local_hour"] < 6)]
    short = night[night["hours_awake"] < 12]  # e.g. night-shift workers who slept by day
    long = night[night["hours_awake"] >= 18]
    assert len(short) > 100 and len(long) > 100
    assert long[LABEL_COLUMN].mean() > 1.3 * short[LABEL_COLUMN].mean()


def test_fatigue_rate_is_higher_at_night_than_in_the_afternoon(cohort) -> None:
    frame = cohort()
    night = frame[(frame["local_hour"] >= 0) & (frame["local_hour"] < 6)]
    afternoon = frame[(frame["local_hour"] >= 14) & (frame["local_hour"] < 18)]
    assert night[LABEL_COLUMN].mean() > afternoon[LABEL_COLUMN].mean()
