"""Personal-baseline features: the one definition the simulator, the importer, the API and the
phone's reference client all compute with.

A baseline compares a measurement with the same person's own earlier days. Everything here works
on a *day calendar*: one row per (person, local date), a person's days contiguous from their first
one (a missing day is a row of NaN, so "the 14 days before D" is always 14 rows), ``first_row``
giving each row the position of its person's first day so that no window reaches into another
person. The batch callers lay a whole cohort on one calendar; the API and the phone lay one
person's last :data:`LONGEST_WINDOW_DAYS` days on a small one. Both go through the same window
sums, added in the same order, so their results are equal to the last bit.

Point in time: a baseline on day D uses days strictly before D (for the sleep debt, the night
that just ended too). Which day D is:

* the **night's date** (the local date the last main sleep ended) for everything measured over
  the night: sleep duration, sleep midpoint, resting heart rate and RMSSD;
* the **local date of the moment** for the fatigue-report rate: reports of the same date never
  count, whatever their hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

import numpy as np

from fatigue_guard.contract.features import FEATURES_BY_NAME

if TYPE_CHECKING:
    from fatigue_guard.contract.schemas import Features, RawMeasurements

# Nothing is a baseline before this many earlier days carry a value (a newly paired tracker).
WARMUP_DAYS: Final[int] = 3
# Midpoint, resting heart rate, RMSSD and the fatigue-report rate: the 14 days before.
BASELINE_WINDOW_DAYS: Final[int] = 14
# Sleep debt: the 7 nights up to and including the one that just ended.
DEBT_WINDOW_DAYS: Final[int] = 7
# Without a sleep goal, the person's usual sleep over four weeks stands in for their need: long
# enough that one bad week does not redefine it.
SLEEP_NEED_WINDOW_DAYS: Final[int] = 28
LONGEST_WINDOW_DAYS: Final[int] = max(
    BASELINE_WINDOW_DAYS, DEBT_WINDOW_DAYS, SLEEP_NEED_WINDOW_DAYS
)

BASELINE_FEATURES: Final[tuple[str, ...]] = (
    "sleep_debt_7d_h",
    "sleep_midpoint_shift_h",
    "resting_hr_delta_bpm",
    "hrv_rmssd_ratio",
    "recent_fatigue_rate_14d",
)

# Local offsets from UTC run from -12:00 to +14:00; one clock hour maps to two offsets 24 h
# apart only at the ends. Offsets are read in (-11, +13]: +13 (New Zealand summer, Samoa, Tonga)
# stays, and -11, -12 and +14 (a few tens of thousands of people) read as +13, +12 and -10.
_OFFSET_HIGH_H: Final[float] = 13.0
_OFFSET_STEP_H: Final[float] = 0.25  # every offset in use is a whole quarter hour


@dataclass(frozen=True, slots=True)
class DayCalendar:
    """Per-day history on a day calendar (see the module docstring); every array one per row.

    ``reports`` / ``positives``: how many fatigue reports (labels) are dated that day, and how
    many of them were positive.
    """

    first_row: np.ndarray
    sleep_h: np.ndarray
    midpoint_h: np.ndarray
    resting_hr_bpm: np.ndarray
    hrv_rmssd_ms: np.ndarray
    reports: np.ndarray
    positives: np.ndarray


@dataclass(frozen=True, slots=True)
class Moments:
    """The moments to compute baselines for, one entry per moment.

    ``night_row`` / ``date_row``: calendar positions of the night's date and of the moment's
    date. The other arrays are the moment's own raw measurements (NaN when not measured);
    ``sleep_goal_h`` is the person's own goal, NaN when they have none.
    """

    night_row: np.ndarray
    date_row: np.ndarray
    sleep_h: np.ndarray
    midpoint_h: np.ndarray
    resting_hr_bpm: np.ndarray
    hrv_rmssd_ms: np.ndarray
    sleep_goal_h: np.ndarray


def window_sum_count(
    values: np.ndarray, first_row: np.ndarray, rows: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the non-missing ``values`` on the ``window`` days before each of
    ``rows`` (never before that person's first day).

    Added day by day, nearest first: the same numbers in the same order give the same sum
    whether the calendar holds a cohort or one person's last weeks.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 1:
        return _one_window_sum_count(values, int(first_row[rows[0]]), int(rows[0]), window)
    first = first_row[rows]
    total = np.zeros(len(rows))
    count = np.zeros(len(rows))
    for back in range(1, window + 1):
        source = rows - back
        inside = source >= first
        value = values[np.where(inside, source, 0)]
        take = inside & ~np.isnan(value)
        total = total + np.where(take, value, 0.0)
        count = count + take
    return total, count


def _one_window_sum_count(
    values: np.ndarray, first: int, row: int, window: int
) -> tuple[np.ndarray, np.ndarray]:
    # One moment (the API's and the phone's case): the same additions in the same order (adding
    # the array path's 0.0 for a missing day changes no sum), without an array operation per day.
    total, count = 0.0, 0
    for source in range(row - 1, max(row - window, first) - 1, -1):
        value = float(values[source])
        if value == value:  # not NaN
            total += value
            count += 1
    return np.array([total]), np.array([float(count)])


def window_mean(
    values: np.ndarray,
    first_row: np.ndarray,
    rows: np.ndarray,
    window: int = BASELINE_WINDOW_DAYS,
) -> np.ndarray:
    """Mean over the ``window`` days before each of ``rows``; NaN with fewer than
    :data:`WARMUP_DAYS` values."""
    total, count = window_sum_count(values, first_row, rows, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= WARMUP_DAYS, total / count, np.nan)


def sleep_debt(
    need_h: np.ndarray, earlier_sum_h: np.ndarray, earlier_nights: np.ndarray, tonight_h: np.ndarray
) -> np.ndarray:
    """Hours short of ``need_h`` over the last 7 nights, this one included, as a 7-night total.

    ``earlier_sum_h`` / ``earlier_nights``: sleep and count of the recorded nights of the 6 days
    before. Unrecorded nights are unknown, not zero sleep: the shortfall of the recorded ones is
    scaled up to seven nights.
    """
    nights = earlier_nights + 1
    mean_sleep = (earlier_sum_h + tonight_h) / nights
    return DEBT_WINDOW_DAYS * (need_h - mean_sleep)


def clock_shift(hours: np.ndarray, usual: np.ndarray) -> np.ndarray:
    """``hours - usual`` on a 24-hour clock, in ``[-12, 12)``: an evening sleep whose midpoint
    is 21:30 is 5.5 h earlier than a usual 03:00, not 18.5 h later."""
    return np.mod(hours - usual + 12.0, 24.0) - 12.0


def _in_range(name: str, values: np.ndarray) -> np.ndarray:
    # A baseline is computed, not measured: an extreme day is held at the contract's bound
    # rather than making the whole moment invalid.
    spec = FEATURES_BY_NAME[name]
    return np.clip(values, spec.minimum, spec.maximum)


def personal_baselines(calendar: DayCalendar, at: Moments) -> dict[str, np.ndarray]:
    """The five personal-baseline features of each moment in ``at``; NaN where not known yet."""
    first = calendar.first_row
    night, day = at.night_row, at.date_row

    need = np.where(
        np.isnan(at.sleep_goal_h),
        window_mean(calendar.sleep_h, first, night, SLEEP_NEED_WINDOW_DAYS),
        at.sleep_goal_h,
    )
    # With a known goal the debt still waits for the warm-up: 3 earlier nights on record.
    _, nights_known = window_sum_count(calendar.sleep_h, first, night, SLEEP_NEED_WINDOW_DAYS)
    need = np.where(nights_known >= WARMUP_DAYS, need, np.nan)
    week_sum, week_nights = window_sum_count(calendar.sleep_h, first, night, DEBT_WINDOW_DAYS - 1)
    debt = sleep_debt(need, week_sum, week_nights, at.sleep_h)

    shift = clock_shift(at.midpoint_h, window_mean(calendar.midpoint_h, first, night))
    hr_delta = at.resting_hr_bpm - window_mean(calendar.resting_hr_bpm, first, night)
    with np.errstate(invalid="ignore", divide="ignore"):
        hrv_ratio = at.hrv_rmssd_ms / window_mean(calendar.hrv_rmssd_ms, first, night)

    # The report rate needs reports on 3 earlier dates, however many each date holds.
    reported_days, _ = window_sum_count(
        (calendar.reports > 0).astype(np.float64), first, day, BASELINE_WINDOW_DAYS
    )
    reports, _ = window_sum_count(calendar.reports, first, day, BASELINE_WINDOW_DAYS)
    positives, _ = window_sum_count(calendar.positives, first, day, BASELINE_WINDOW_DAYS)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(reported_days >= WARMUP_DAYS, positives / reports, np.nan)

    return {
        "sleep_debt_7d_h": _in_range("sleep_debt_7d_h", debt),
        "sleep_midpoint_shift_h": _in_range("sleep_midpoint_shift_h", shift),
        "resting_hr_delta_bpm": _in_range("resting_hr_delta_bpm", hr_delta),
        "hrv_rmssd_ratio": _in_range("hrv_rmssd_ratio", hrv_ratio),
        "recent_fatigue_rate_14d": rate,
    }


# --- one person, one moment at a time: the API and the phone ----------------------------------


def local_dates(measured_at: datetime, local_hour: float, hours_awake: float) -> tuple[date, date]:
    """``(moment's date, night's date)`` in the person's local time.

    A request carries its instant in UTC and the local clock hour (``local_hour``); their
    difference is the UTC offset, to the quarter hour. The night's date is the local date of
    the wake-up, ``hours_awake`` before the moment.
    """
    utc_hour = (measured_at.hour * 3600 + measured_at.minute * 60 + measured_at.second) / 3600
    offset = _OFFSET_HIGH_H - (_OFFSET_HIGH_H - (local_hour - utc_hour)) % 24.0
    offset = round(offset / _OFFSET_STEP_H) * _OFFSET_STEP_H
    local = measured_at + timedelta(hours=offset)
    return local.date(), (local - timedelta(hours=hours_awake)).date()


@dataclass(slots=True)
class DayRecord:
    """What one local date contributes to a person's baselines (None: nothing recorded)."""

    sleep_h: float | None = None
    midpoint_h: float | None = None
    resting_hr_bpm: float | None = None
    hrv_rmssd_ms: float | None = None
    reports: int = 0
    positives: int = 0

    def fill(self, other: DayRecord) -> bool:
        """Take ``other``'s measurements where this day has none (the first reading of a
        night stands for it); add its reports. Whether anything changed."""
        changed = False
        for name in ("sleep_h", "midpoint_h", "resting_hr_bpm", "hrv_rmssd_ms"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None and theirs is not None:
                setattr(self, name, theirs)
                changed = True
        if other.reports:
            self.reports += other.reports
            self.positives += other.positives
            changed = True
        return changed


@dataclass(frozen=True, slots=True)
class RawMoment:
    """The raw measurements of one moment that baselines are computed from."""

    measured_at: datetime
    local_hour: float
    hours_awake: float
    sleep_h: float
    resting_hr_bpm: float
    hrv_rmssd_ms: float | None = None
    midpoint_h: float | None = None
    sleep_goal_h: float | None = None

    @property
    def dates(self) -> tuple[date, date]:
        return local_dates(self.measured_at, self.local_hour, self.hours_awake)

    def night_record(self) -> DayRecord:
        """What this moment adds to its night's date."""
        return DayRecord(
            sleep_h=self.sleep_h,
            midpoint_h=self.midpoint_h,
            resting_hr_bpm=self.resting_hr_bpm,
            hrv_rmssd_ms=self.hrv_rmssd_ms,
        )


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass
class PersonalHistory:
    """One person's days, for computing a moment's baselines the way the batch callers do.

    Only the last :data:`LONGEST_WINDOW_DAYS` days before a moment matter, so a caller may keep
    just those.
    """

    days: dict[date, DayRecord] = field(default_factory=dict)

    def add(self, day: date, record: DayRecord) -> bool:
        """Merge ``record`` into ``day`` (see :meth:`DayRecord.fill`); whether it changed."""
        current = self.days.get(day)
        if current is None:
            self.days[day] = DayRecord()
            current = self.days[day]
        return current.fill(record)

    def add_moment(self, moment: RawMoment) -> tuple[date, DayRecord]:
        """Record ``moment``'s night; returns the night's date and what it contributed."""
        _, night = moment.dates
        record = moment.night_record()
        self.add(night, record)
        return night, record

    def add_label(self, moment_date: date, positive: bool) -> DayRecord:
        """Record a fatigue report dated ``moment_date``; returns what it contributed."""
        record = DayRecord(reports=1, positives=int(positive))
        self.add(moment_date, record)
        return record

    def baselines(self, moment: RawMoment) -> dict[str, float | None]:
        """The five baselines at ``moment`` from the days before it (None: not known yet)."""
        moment_date, night = moment.dates
        start = min(moment_date, night) - timedelta(days=LONGEST_WINDOW_DAYS)
        n = (max(moment_date, night) - start).days + 1
        empty = DayRecord()
        # Only the days a window can reach, however long the history.
        days = [self.days.get(start + timedelta(days=row), empty) for row in range(n)]
        columns = np.array(
            [
                [
                    _nan(d.sleep_h),
                    _nan(d.midpoint_h),
                    _nan(d.resting_hr_bpm),
                    _nan(d.hrv_rmssd_ms),
                    d.reports,
                    d.positives,
                ]
                for d in days
            ],
            dtype=np.float64,
        ).T
        calendar = DayCalendar(np.zeros(n, dtype=np.int64), *columns)
        at = Moments(
            night_row=np.array([(night - start).days]),
            date_row=np.array([(moment_date - start).days]),
            sleep_h=np.array([float(moment.sleep_h)]),
            midpoint_h=np.array([_nan(moment.midpoint_h)]),
            resting_hr_bpm=np.array([float(moment.resting_hr_bpm)]),
            hrv_rmssd_ms=np.array([_nan(moment.hrv_rmssd_ms)]),
            sleep_goal_h=np.array([_nan(moment.sleep_goal_h)]),
        )
        values = personal_baselines(calendar, at)
        return {name: None if np.isnan(v[0]) else float(v[0]) for name, v in values.items()}

    def forget_before(self, day: date) -> None:
        """Drop the days no baseline on or after ``day`` can reach."""
        oldest = day - timedelta(days=LONGEST_WINDOW_DAYS)
        for old in [d for d in self.days if d < oldest]:
            del self.days[old]


def raw_moment(measured_at: datetime, features: Features, raw: RawMeasurements | None) -> RawMoment:
    """The raw measurements of a prediction request (the API's and the phone's one reading)."""
    return RawMoment(
        measured_at=measured_at.astimezone(UTC),
        local_hour=features.local_hour,
        hours_awake=features.hours_awake,
        sleep_h=features.sleep_duration_h,
        resting_hr_bpm=features.resting_hr_bpm,
        hrv_rmssd_ms=features.hrv_rmssd_ms,
        midpoint_h=None if raw is None else raw.sleep_midpoint_h,
        sleep_goal_h=None if raw is None else raw.sleep_goal_h,
    )
