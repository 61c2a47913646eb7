"""The shared personal-baseline definition: causal, warmed up, and the same numbers whether a
whole cohort or one person's recent days are on the calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from fatigue_guard.contract.baselines import (
    BASELINE_WINDOW_DAYS,
    DEBT_WINDOW_DAYS,
    WARMUP_DAYS,
    DayCalendar,
    DayRecord,
    Moments,
    PersonalHistory,
    RawMoment,
    local_dates,
    personal_baselines,
)

DAYS = 40
CUT = 20  # the day from which the tests below rewrite history


def _person(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "sleep_h": rng.normal(7, 1, DAYS),
        "midpoint_h": rng.normal(3.5, 1, DAYS),
        "resting_hr_bpm": rng.normal(60, 4, DAYS),
        "hrv_rmssd_ms": rng.lognormal(3.8, 0.2, DAYS),
        "reports": rng.integers(0, 3, DAYS).astype(float),
    }


def _all_days(days: dict[str, np.ndarray], positives: np.ndarray) -> dict[str, np.ndarray]:
    calendar = DayCalendar(np.zeros(DAYS, dtype=np.int64), positives=positives, **days)
    rows = np.arange(DAYS)
    moments = Moments(
        night_row=rows,
        date_row=rows,
        sleep_h=days["sleep_h"],
        midpoint_h=days["midpoint_h"],
        resting_hr_bpm=days["resting_hr_bpm"],
        hrv_rmssd_ms=days["hrv_rmssd_ms"],
        sleep_goal_h=np.full(DAYS, np.nan),
    )
    return personal_baselines(calendar, moments)


def test_a_day_uses_only_earlier_days_and_waits_for_the_warm_up() -> None:
    rng = np.random.default_rng(0)
    days = _person(rng)
    positives = np.minimum(days["reports"], rng.integers(0, 2, DAYS))
    changed = {k: v.copy() for k, v in days.items()}
    for name in ("sleep_h", "midpoint_h", "resting_hr_bpm", "hrv_rmssd_ms"):
        changed[name][CUT:] += 1.5
    before, after = _all_days(days, positives), _all_days(changed, positives)
    for name, values in before.items():
        # Day CUT itself changed its own measurement; only the baseline parts are compared.
        assert np.isnan(values[:WARMUP_DAYS]).all(), name
        assert not np.allclose(values[CUT + 1 :], after[name][CUT + 1 :], equal_nan=True) or (
            name == "recent_fatigue_rate_14d"
        ), name
    np.testing.assert_array_equal(
        before["resting_hr_delta_bpm"][:CUT], after["resting_hr_delta_bpm"][:CUT]
    )
    d = 30
    usual = days["resting_hr_bpm"][d - BASELINE_WINDOW_DAYS : d].mean()
    assert np.isclose(before["resting_hr_delta_bpm"][d], days["resting_hr_bpm"][d] - usual)
    need = days["sleep_h"][d - 28 : d].mean()
    week = days["sleep_h"][d - DEBT_WINDOW_DAYS + 1 : d + 1].mean()
    assert np.isclose(before["sleep_debt_7d_h"][d], DEBT_WINDOW_DAYS * (need - week))
    window = slice(d - BASELINE_WINDOW_DAYS, d)
    rate = positives[window].sum() / days["reports"][window].sum()
    assert np.isclose(before["recent_fatigue_rate_14d"][d], rate)


def test_one_persons_recent_days_give_the_cohort_calendars_numbers_exactly() -> None:
    """What the API and the phone compute (one person, day by day) is what the simulator and
    the importer compute (whole calendar at once), to the last bit."""
    rng = np.random.default_rng(1)
    days = _person(rng)
    positives = np.minimum(days["reports"], rng.integers(0, 2, DAYS))
    days["hrv_rmssd_ms"][[5, 17, 18]] = np.nan  # nights without a reading
    batch = _all_days(days, positives)
    history = PersonalHistory()
    day0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    for d in range(DAYS):
        hrv = days["hrv_rmssd_ms"][d]
        moment = RawMoment(
            measured_at=day0 + timedelta(days=d, hours=1),
            local_hour=8.0,
            hours_awake=1.0,
            sleep_h=float(days["sleep_h"][d]),
            resting_hr_bpm=float(days["resting_hr_bpm"][d]),
            hrv_rmssd_ms=None if np.isnan(hrv) else float(hrv),
            midpoint_h=float(days["midpoint_h"][d]),
        )
        online = history.baselines(moment)
        for name, values in batch.items():
            expected = None if np.isnan(values[d]) else float(values[d])
            assert online[name] == expected, (d, name)
        history.add_moment(moment)
        history.add(
            moment.dates[0],
            DayRecord(reports=int(days["reports"][d]), positives=int(positives[d])),
        )
        history.forget_before(moment.dates[0])


def test_local_dates_come_from_the_local_hour() -> None:
    # 23:30 UTC is 08:30 the next day in Tokyo (+09:00) and 13:30 the same day in Hawaii.
    at = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    assert local_dates(at, 8.5, 2.0) == (date(2026, 3, 3), date(2026, 3, 3))
    assert local_dates(at, 13.5, 7.0) == (date(2026, 3, 2), date(2026, 3, 2))
    # New Zealand summer (+13:00) and India (+05:30).
    assert local_dates(at, 12.5, 14.0)[0] == date(2026, 3, 3)
    assert local_dates(at, 5.0, 6.0) == (date(2026, 3, 3), date(2026, 3, 2))
