"""Real wearable rows for the monitor's scenario suite: PMData read, people resampled, situations
injected.

PMData (16 people, Fitbit Versa 2 and a morning self-report app, Nov 2019 - Mar 2020, CC BY 4.0,
see ``tests/fixtures/pmdata_monitor/README.md``) is reduced once, by
``tests/fixtures/pmdata_monitor/build_fixture.py``, to one row per person and day
(:func:`read_person_days`); tests read only that committed table (:func:`load_person_days`).

:func:`real_cohort` turns it into the monitor's input: about ninety pseudo-people, each a whole
real person (their own run of consecutive nights, starting at a random day of their record) with
a per-person jitter and a new id, assigned segments, a 28-day reference period and the 7-day
window after it. A situation changes the raw nightly values from a day of that window on, before
the contract features are derived, so every feature computed from a changed value (personal
baselines, sleep debt) moves as it would on a device.

PMData has no HRV. RMSSD is derived from each night's real resting heart rate (lower when the
night's heart rate is above the person's usual, as it is physiologically) around a per-person
level drawn from a log-normal; it tests the statistics, not a device's HRV. Steps are derived from
Fitbit's real daily active minutes. ``hr_last_hour_bpm`` is not in the copy: it is missing on every
row, as it is for a device that does not send it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from fatigue_guard.contract.features import FEATURE_NAMES

FIXTURE: Final[Path] = (
    Path(__file__).resolve().parents[1] / "fixtures" / "pmdata_monitor" / "person_days.csv"
)
# p12 logged 8 nights in five months: too few for a reference period of its own.
EXCLUDED_PEOPLE: Final[frozenset[str]] = frozenset({"p12"})
# Oslo (the participants' time zone) is UTC+1 throughout November-March.
LOCAL_OFFSET: Final[timedelta] = timedelta(hours=1)

SITUATIONS: Final[tuple[str, ...]] = (
    "none",
    "device_offset",
    "app_drops_steps",
    "older_joiners",
    "seasonal_sleep",
)
DEVICE_MODELS: Final[tuple[str, ...]] = ("Versa 2", "Sense", "Charge 4")
DEVICE_SHARES: Final[tuple[float, ...]] = (0.45, 0.30, 0.25)
PLATFORMS: Final[tuple[str, ...]] = ("ios", "android")
PLATFORM_SHARES: Final[tuple[float, ...]] = (0.55, 0.45)
APP_VERSIONS: Final[tuple[str, ...]] = ("3.1.0", "3.2.0", "3.3.1")
APP_SHARES: Final[tuple[float, ...]] = (0.20, 0.35, 0.45)

# Situations (changes from the onset day of the window on).
OFFSET_DEVICE: Final[str] = "Sense"  # its optical sensor reads resting HR high after an update
OFFSET_RESTING_HR_BPM: Final[float] = 6.0
DROPPING_APP: Final[str] = "3.3.1"  # the release stops sending steps
JOINER_SHARE: Final[float] = 1 / 3  # of the window's people
JOINER_RMSSD_FACTOR: Final[float] = 0.6
JOINER_RESTING_HR_BPM: Final[float] = 6.0
SEASONAL_WAKE_EARLIER_MIN: Final[float] = 20.0
SEASONAL_EXTRA_WASO_MIN: Final[float] = 10.0

# The fixture's columns: who and when, the night, the day's resting HR, activity and report.
COLUMNS: Final[tuple[str, ...]] = (
    "person",
    "date",
    "bed_h",
    "wake_h",
    "asleep_min",
    "awake_min",
    "latency_min",
    "in_bed_min",
    "stages",
    "deep_min",
    "rem_min",
    "wake_count",
    "resting_hr",
    "lightly_min",
    "moderately_min",
    "very_min",
    "fatigue",
)
MOMENTS_PER_DAY: Final[int] = 4
HISTORY_DAYS: Final[int] = 14  # personal baselines: the 14 nights before
BASELINE_MIN_NIGHTS: Final[int] = 3


# --------------------------------------------------------------------------------------------
# Reading PMData (fixture build time only)


def _local_date(stamp: str) -> date:
    return (datetime.fromisoformat(stamp.replace("Z", "+00:00")) + LOCAL_OFFSET).date()


def _hours_after_midnight(stamp: str, day: date) -> float:
    moment = datetime.fromisoformat(stamp[:19])
    return (moment - datetime.combine(day, datetime.min.time())).total_seconds() / 3600.0


def _sleep_rows(path: Path) -> dict[date, dict[str, float]]:
    """Main sleep of each night (the longest when a night has several), keyed by the date the
    night ends on."""
    out: dict[date, dict[str, float]] = {}
    for log in json.loads(path.read_text()):
        if not log.get("mainSleep"):
            continue
        day = date.fromisoformat(log["dateOfSleep"])
        summary = log.get("levels", {}).get("summary", {})
        stages = log.get("type") == "stages"
        if stages:
            wakes = summary.get("wake", {}).get("count", np.nan)
        else:  # classic logs count awake and restless spells separately
            wakes = summary.get("awake", {}).get("count", 0) + summary.get("restless", {}).get(
                "count", 0
            )
        row = {
            "log_id": float(log["logId"]),
            "bed_h": _hours_after_midnight(log["startTime"].replace(" ", "T"), day),
            "wake_h": _hours_after_midnight(log["endTime"], day),
            "asleep_min": float(log["minutesAsleep"]),
            "awake_min": float(log["minutesAwake"]),
            "latency_min": float(log["minutesToFallAsleep"]),
            "in_bed_min": float(log["timeInBed"]),
            "stages": float(stages),
            "deep_min": float(summary["deep"]["minutes"]) if stages else np.nan,
            "rem_min": float(summary["rem"]["minutes"]) if stages else np.nan,
            "wake_count": float(wakes),
        }
        if day not in out or row["asleep_min"] > out[day]["asleep_min"]:
            out[day] = row
    return out


def _daily_values(path: Path) -> dict[date, float]:
    if not path.exists():
        return {}
    out = {}
    for entry in json.loads(path.read_text()):
        value = entry["value"]
        if isinstance(value, dict):  # resting heart rate: {date, value, error}; 0 = none
            value = value.get("value") or np.nan
        out[date.fromisoformat(entry["dateTime"][:10])] = float(value)
    return out


def read_person_days(root: Path, person: str) -> pd.DataFrame:
    """One row per day of ``person``'s record: the night that ends on that day, the day's active
    minutes and resting heart rate, and the morning's fatigue report (1 very tired .. 5 fresh)."""
    fitbit, pmsys = root / person / "fitbit", root / person / "pmsys"
    sleep = _sleep_rows(fitbit / "sleep.json")
    scores = pd.read_csv(fitbit / "sleep_score.csv")
    night_hr = {
        float(log): float(hr)
        for log, hr in zip(scores["sleep_log_entry_id"], scores["resting_heart_rate"], strict=True)
        if hr > 0
    }
    daily_hr = _daily_values(fitbit / "resting_heart_rate.json")
    active = {
        level: _daily_values(fitbit / f"{level}_active_minutes.json")
        for level in ("lightly", "moderately", "very")
    }
    wellness = pd.read_csv(pmsys / "wellness.csv")
    fatigue: dict[date, float] = {}
    for stamp, value in sorted(
        zip(wellness["effective_time_frame"], wellness["fatigue"], strict=True)
    ):
        fatigue.setdefault(_local_date(stamp), float(value))  # the day's first report
    days = sorted(set(sleep) | set(active["lightly"]) | set(fatigue))
    rows = []
    for day in days:
        night = sleep.get(day, {})
        # The night's own resting HR (Fitbit's sleep score); else the day before's daily value,
        # the latest one known when the night ends.
        hr = night_hr.get(night.get("log_id", -1.0), daily_hr.get(day - timedelta(days=1), np.nan))
        rows.append(
            {
                "person": person,
                "date": day.isoformat(),
                **{k: v for k, v in night.items() if k != "log_id"},
                "resting_hr": hr,
                **{f"{level}_min": active[level].get(day, np.nan) for level in active},
                "fatigue": fatigue.get(day, np.nan),
            }
        )
    return pd.DataFrame(rows)


def read_pmdata(root: Path, people: Iterable[str] | None = None) -> pd.DataFrame:
    """Every usable participant's days (see :func:`read_person_days`)."""
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("p"))
    chosen = [p for p in (people or names) if p not in EXCLUDED_PEOPLE]
    frame = pd.concat([read_person_days(root, p) for p in chosen], ignore_index=True)
    return frame.reindex(columns=list(COLUMNS))


def load_person_days() -> pd.DataFrame:
    """The committed per-person-day table (what tests read)."""
    frame = pd.read_csv(FIXTURE)
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    return frame


# --------------------------------------------------------------------------------------------
# Resampling whole people into a reference period and a window


@dataclass(frozen=True)
class RealConfig:
    """One resampled cohort: ``people`` pseudo-people, ``reference_days`` then ``window_days``;
    ``situation`` starts on day ``onset`` of the window (the simulator's convention: the first
    window mostly after the onset). ``churn``: share of the reference's people replaced in the
    window by others (people come and go in any live population)."""

    situation: str = "none"
    seed: int = 0
    people: int = 90
    reference_days: int = 28
    window_days: int = 7
    onset: int = 2
    churn: float = 0.1

    def __post_init__(self) -> None:
        if self.situation not in SITUATIONS:
            raise ValueError(f"unknown situation {self.situation!r}")


@dataclass(frozen=True)
class RealCohort:
    config: RealConfig
    reference: pd.DataFrame
    window: pd.DataFrame
    people: pd.DataFrame = field(repr=False)  # one row per pseudo-person: base, segments, role


# Calendar of the resampled cohort: day 0 of the reference is a Monday, and each pseudo-person
# keeps their real weekdays (their record is moved by whole weeks).
DAY0: Final[date] = date(2024, 1, 1)


@dataclass
class _Person:
    uid: str
    base: str
    start: date  # real date mapped to the reference's day 0
    device: str
    platform: str
    app: str
    role: str  # "stayer", "leaver" (reference only), "newcomer" (window only), "joiner"


def _draw(rng: np.random.Generator, values: tuple[str, ...], shares: tuple[float, ...]) -> str:
    return str(values[rng.choice(len(values), p=np.asarray(shares))])


def _stratified(
    values: tuple[str, ...], shares: tuple[float, ...], n: int, rng: np.random.Generator
):
    # Exact shares (largest remainders), shuffled: a group's make-up carries no segment effect.
    quota = np.asarray(shares) * n
    counts = np.floor(quota).astype(int)
    counts[np.argsort(-(quota - counts))[: n - counts.sum()]] += 1
    out = np.repeat(np.asarray(values), counts)
    rng.shuffle(out)
    return [str(v) for v in out]


@dataclass(frozen=True)
class _Record:
    """One real person's days as dense arrays (NaN where nothing was recorded)."""

    first: date
    values: dict[str, np.ndarray]

    @classmethod
    def of(cls, days: pd.DataFrame) -> _Record:
        first, last = min(days["date"]), max(days["date"])
        position = np.asarray([(d - first).days for d in days["date"]])
        values = {}
        for column in COLUMNS[2:]:
            dense = np.full((last - first).days + 1, np.nan)
            dense[position] = days[column].to_numpy(float)
            values[column] = dense
        return cls(first, values)

    @property
    def last(self) -> date:
        return self.first + timedelta(days=len(self.values["asleep_min"]) - 1)

    def days(self, start: date, first: int, last: int) -> dict[str, np.ndarray]:
        """Days ``start + first .. start + last - 1`` of every column (NaN past the record)."""
        lo = (start - self.first).days + first
        size = len(self.values["asleep_min"])
        pad = max(lo + last - first - size, 0)
        return {
            k: np.append(v[lo : lo + last - first], np.full(pad, np.nan))
            for k, v in self.values.items()
        }


def _trailing_mean(
    values: np.ndarray, window: int, lag: int, minimum: int = BASELINE_MIN_NIGHTS
) -> np.ndarray:
    """Mean of the present values among the ``window`` entries that end ``lag`` entries before
    each one (lag 1: the previous ``window`` nights; lag 0: these ``window`` nights, this one
    included), NaN with fewer than ``minimum`` of them."""
    present = np.isfinite(values)
    total = np.concatenate([[0.0], np.cumsum(np.where(present, values, 0.0))])
    count = np.concatenate([[0], np.cumsum(present)])
    end = np.maximum(np.arange(len(values)) + 1 - lag, 0)
    start = np.maximum(end - window, 0)
    n = count[end] - count[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (total[end] - total[start]) / n
    return np.where(n >= minimum, mean, np.nan)


def _person_rows(
    person: _Person,
    record: _Record,
    rng: np.random.Generator,
    config: RealConfig,
    first_day: int,
    last_day: int,
) -> pd.DataFrame:
    """Contract rows of one pseudo-person for days ``first_day .. last_day - 1`` (day 0 = the
    reference's first day), after jitter and the situation."""
    total = config.reference_days + config.window_days
    s = record.days(person.start, -HISTORY_DAYS, total + 1)
    n = len(s["asleep_min"])
    day = np.arange(-HISTORY_DAYS, total + 1)
    drifted = day >= config.reference_days + config.onset

    # Per-person jitter: a copy of a real person is another person of the same kind.
    clock = rng.normal(0, 0.5)
    sleep_scale = float(np.exp(rng.normal(0, 0.05)))
    hr_shift = rng.normal(0, 3.0)
    activity = float(np.exp(rng.normal(0, 0.2)))
    bed = s["bed_h"] + clock
    wake = s["wake_h"] + clock
    asleep = s["asleep_min"] * sleep_scale
    in_bed = s["in_bed_min"] * sleep_scale
    awake = s["awake_min"] * sleep_scale
    deep = s["deep_min"] * sleep_scale
    rem = s["rem_min"] * sleep_scale
    hr = s["resting_hr"] + hr_shift

    # RMSSD: a per-person level (lower for people with a higher resting HR), falling on nights
    # whose resting HR is above the person's usual.
    usual_hr = float(np.nanmean(hr)) if np.isfinite(hr).any() else 60.0
    level = np.log(48.0) - 0.03 * (usual_hr - 58.0) + rng.normal(0, 0.3)
    rmssd = np.exp(level - 0.04 * (hr - usual_hr) + rng.normal(0, 0.12, n))

    if person.role == "joiner":
        rmssd = rmssd * JOINER_RMSSD_FACTOR
        hr = hr + JOINER_RESTING_HR_BPM
    situation = config.situation
    if situation == "device_offset" and person.device == OFFSET_DEVICE:
        hr = np.where(drifted, hr + OFFSET_RESTING_HR_BPM, hr)
    if situation == "seasonal_sleep":
        earlier, waso = SEASONAL_WAKE_EARLIER_MIN, SEASONAL_EXTRA_WASO_MIN
        wake = np.where(drifted, wake - earlier / 60, wake)
        in_bed = np.where(drifted, in_bed - earlier, in_bed)
        asleep = np.where(drifted, asleep - earlier - waso, asleep)
        awake = np.where(drifted, awake + waso, awake)

    steps_day = activity * (25 * s["lightly_min"] + 100 * s["moderately_min"] + 130 * s["very_min"])
    duration = asleep / 60
    goal = float(np.nanmedian(duration)) + rng.normal(0, 0.25) if np.isfinite(duration).any() else 7
    debt = _trailing_mean(goal - duration, 7, 0) * 7
    midpoint = (bed + wake) / 2
    tired = np.where(np.isnan(s["fatigue"]), np.nan, s["fatigue"] <= 2)
    recent = _trailing_mean(tired, HISTORY_DAYS, 1, minimum=1)
    nightly = {
        "sleep_duration_h": duration,
        "sleep_efficiency": np.clip(asleep / in_bed, 0, 1),
        "resting_hr_bpm": hr,
        "hrv_rmssd_ms": np.clip(rmssd, 1, 300),
        "sleep_latency_min": s["latency_min"],
        "waso_min": awake,
        "awakenings": s["wake_count"],
        "deep_sleep_pct": deep / asleep * 100,
        "rem_sleep_pct": rem / asleep * 100,
        "sleep_debt_7d_h": np.clip(debt, -30, 60),
        "sleep_midpoint_shift_h": np.clip(
            midpoint - _trailing_mean(midpoint, HISTORY_DAYS, 1), -12, 12
        ),
        "resting_hr_delta_bpm": hr - _trailing_mean(hr, HISTORY_DAYS, 1),
        "hrv_rmssd_ratio": np.clip(rmssd / _trailing_mean(rmssd, HISTORY_DAYS, 1), 0.05, 10),
        "recent_fatigue_rate_14d": recent,
    }
    keep = (day >= first_day) & (day < last_day) & np.isfinite(asleep) & np.isfinite(hr)
    if person.role == "joiner":
        keep &= drifted
    index = np.repeat(np.flatnonzero(keep), MOMENTS_PER_DAY)
    if not len(index):
        return pd.DataFrame()
    following = np.append(bed[1:] + 24, np.nan)
    next_bed = np.where(np.isfinite(following), following, wake + 16)[index]
    span = np.clip(next_bed - wake[index], 10, 20)
    k = np.tile(np.arange(MOMENTS_PER_DAY), len(index) // MOMENTS_PER_DAY)
    awake_h = np.maximum(
        0.25, span * (k + 0.35) / MOMENTS_PER_DAY + rng.uniform(-0.5, 0.5, len(index))
    )
    share = np.minimum(awake_h / span, 1.0)
    previous = np.append(np.nan, steps_day[:-1])
    steps = np.round(previous[index] * (1 - share) + steps_day[index] * share)
    if situation == "app_drops_steps" and person.app == DROPPING_APP:
        steps = np.where(drifted[index], np.nan, steps)
    clock_h = wake[index] + awake_h
    local = pd.Timestamp(DAY0) + pd.to_timedelta(day[index] * 24.0 + clock_h, unit="h")
    label = pd.array(np.where(np.isfinite(tired), tired, 0).astype(bool), dtype="boolean")
    label[~np.isfinite(tired)] = pd.NA
    return pd.DataFrame(
        {
            "user_id": person.uid,
            "measured_at": (local - LOCAL_OFFSET).round("s").tz_localize(UTC),
            "device_model": person.device,
            "platform": person.platform,
            "app_version": person.app,
            **{name: values[index] for name, values in nightly.items()},
            "hours_awake": np.round(awake_h, 3),
            "local_hour": np.round(clock_h % 24, 3) % 24,
            "hr_last_hour_bpm": np.nan,
            "steps_24h": steps,
            "fatigue_event": label[index],
        }
    )


def _contract_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True)
    for name in FEATURE_NAMES:
        frame[name] = frame[name].astype(np.float64)
    frame["fatigue_event"] = frame["fatigue_event"].astype("boolean")
    frame = frame.sort_values("measured_at", kind="stable").reset_index(drop=True)
    frame.insert(0, "event_id", [f"e{i:07d}" for i in range(len(frame))])
    ordered = ["event_id", "user_id", "measured_at", "device_model", "platform", "app_version"]
    return frame[[*ordered, *FEATURE_NAMES, "fatigue_event"]]


def real_cohort(config: RealConfig, person_days: pd.DataFrame | None = None) -> RealCohort:
    """Resample whole real people into a reference period and the window after it."""
    days = load_person_days() if person_days is None else person_days
    rng = np.random.default_rng([config.seed, SITUATIONS.index(config.situation)])
    # The same people in every situation of a seed: only the situation differs.
    people_rng = np.random.default_rng(config.seed)
    by_person = {p: _Record.of(g) for p, g in days.groupby("person")}
    bases = sorted(by_person)
    total = config.reference_days + config.window_days

    def starts(base: str) -> list[date]:
        record = by_person[base]
        first = record.first + timedelta(days=HISTORY_DAYS)
        last = record.last - timedelta(days=total)
        # Whole weeks after the cohort's Monday, so that real weekdays are kept.
        offset = (first - DAY0).days % 7
        first = first + timedelta(days=(7 - offset) % 7)
        return [first + timedelta(days=7 * k) for k in range(max((last - first).days // 7 + 1, 0))]

    usable = [b for b in bases if starts(b)]
    leavers = round(config.churn * config.people)
    n_total = config.people + leavers  # newcomers replace the leavers in the window
    base_of = np.resize(people_rng.permutation(usable), n_total)
    people_rng.shuffle(base_of)
    persons = []
    for i, base in enumerate(base_of):
        role = "leaver" if i < leavers else "newcomer" if i >= config.people else "stayer"
        persons.append(
            _Person(
                uid=f"s{config.seed}-u{i:03d}",
                base=str(base),
                start=people_rng.choice(np.asarray(starts(str(base)), dtype=object)),
                device=_draw(people_rng, DEVICE_MODELS, DEVICE_SHARES),
                platform=_draw(people_rng, PLATFORMS, PLATFORM_SHARES),
                app=_draw(people_rng, APP_VERSIONS, APP_SHARES),
                role=role,
            )
        )
    if config.situation == "older_joiners":
        in_window = sum(p.role != "leaver" for p in persons)
        joiners = round(in_window * JOINER_SHARE / (1 - JOINER_SHARE))
        segments = [
            _stratified(DEVICE_MODELS, DEVICE_SHARES, joiners, rng),
            _stratified(PLATFORMS, PLATFORM_SHARES, joiners, rng),
            _stratified(APP_VERSIONS, APP_SHARES, joiners, rng),
        ]
        for j in range(joiners):
            base = str(rng.choice(usable))
            persons.append(
                _Person(
                    uid=f"s{config.seed}-j{j:03d}",
                    base=base,
                    start=rng.choice(np.asarray(starts(base), dtype=object)),
                    device=segments[0][j],
                    platform=segments[1][j],
                    app=segments[2][j],
                    role="joiner",
                )
            )
    reference, window = [], []
    for person in persons:
        # Each person's own stream: jitter and moments do not depend on who else was drawn.
        prng = np.random.default_rng([config.seed, int.from_bytes(person.uid.encode()[-6:])])
        frames = _person_rows(person, by_person[person.base], prng, config, 0, total)
        if not len(frames):
            continue
        day = (frames["measured_at"] + LOCAL_OFFSET).dt.tz_convert(None).dt.normalize()
        day = (day - pd.Timestamp(DAY0)).dt.days
        if person.role in ("stayer", "leaver"):
            reference.append(frames[day < config.reference_days])
        if person.role != "leaver":
            window.append(frames[day >= config.reference_days])
    table = pd.DataFrame(
        [(p.uid, p.base, p.device, p.platform, p.app, p.role) for p in persons],
        columns=["user_id", "base", "device_model", "platform", "app_version", "role"],
    )
    return RealCohort(config, _contract_frame(reference), _contract_frame(window), table)
