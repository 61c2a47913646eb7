"""Simulate a cohort: traits -> schedule -> nights -> physiology -> moments -> labels -> features.

Everything is vectorised over users (and days, moments); the only Python loops run over days
(two recursions: sleep debt and sleep pressure) or over a handful of constants.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import numpy as np
import pandas as pd

from fatigue_guard.contract.baselines import (
    BASELINE_FEATURES,
    DayCalendar,
    Moments,
    personal_baselines,
)
from fatigue_guard.contract.features import FEATURE_NAMES, ID_COLUMNS, LABEL_COLUMN, SEGMENT_COLUMNS
from fatigue_guard.simulation.alertness import draw_moments, pressure_at_wake
from fatigue_guard.simulation.config import CohortConfig
from fatigue_guard.simulation.ids import coded_column, random_uuids, text_column, user_ids
from fatigue_guard.simulation.labels import LabelInputs, draw_labels
from fatigue_guard.simulation.nights import draw_nights
from fatigue_guard.simulation.physiology import draw_illness, draw_physiology, measure
from fatigue_guard.simulation.rng import stream
from fatigue_guard.simulation.scenarios import (
    JOINER_AGE_MEAN,
    JOINER_AGE_SD,
    JOINER_SHARE,
    DriftPlan,
)
from fatigue_guard.simulation.schedule import day_types
from fatigue_guard.simulation.traits import (
    APP_VERSIONS,
    DEVICE_MODELS,
    PLATFORMS,
    Traits,
    draw_traits,
)

# Days simulated before a user's first output day so that sleep debt and sleep pressure start
# from a lived-in state (people have a history before they pair a tracker), not from zero.
BURN_IN_DAYS: Final[int] = 7
# Sporadic gaps: the watch was off the wrist for an hour, the phone did not sync steps.
HR_MISSING_PROB: Final[float] = 0.02
STEPS_MISSING_PROB: Final[float] = 0.02
SLEEP_DETAIL_MISSING_PROB: Final[float] = 0.01
MAIN_BLOCK, JOINER_BLOCK = 0, 1
_NS_PER_HOUR: Final[int] = 3_600_000_000_000
# Raw measurements of each moment that are not features (see simulate_cohort's ``raw``).
RAW_COLUMNS: Final[tuple[str, ...]] = ("sleep_midpoint_h", "sleep_goal_h")


def simulate_cohort(config: CohortConfig, *, raw: bool = False) -> pd.DataFrame:
    """Simulate ``config`` and return a contract-format table, one row per (user, moment).

    Columns: ``event_id, user_id, measured_at`` (tz-aware UTC), ``device_model, platform,
    app_version``, every contract feature in contract order (float64, NaN = missing) and
    ``fatigue_event`` (bool). Rows are ordered by user, then time. ``raw`` adds
    :data:`RAW_COLUMNS`, the raw measurements a device sends besides the features (the request's
    ``raw`` object) that the personal baselines are computed from.
    """
    plan = DriftPlan(config.scenario, config.effective_drift_start)
    blocks = [_simulate_block(config, plan, MAIN_BLOCK, _traits(config, MAIN_BLOCK), 0, 0)]
    if config.scenario == "hrv_population_shift" and plan.start is not None:
        joiners = _traits(config, JOINER_BLOCK)
        blocks.append(
            _simulate_block(config, plan, JOINER_BLOCK, joiners, plan.start, config.users)
        )
    columns = blocks[0]
    if len(blocks) > 1:
        columns = {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}
    n_users = sum(int(b["n_users"][0]) for b in blocks)
    frame = pd.DataFrame(
        {
            "event_id": text_column(columns["event_id"]),
            "user_id": coded_column(columns["user_code"], user_ids(0, n_users)),
            "measured_at": pd.to_datetime(columns["measured_at_ns"], unit="ns", utc=True),
            "device_model": coded_column(columns["device_model"], [d.name for d in DEVICE_MODELS]),
            "platform": coded_column(columns["platform"], list(PLATFORMS)),
            "app_version": coded_column(columns["app_version"], list(APP_VERSIONS)),
            **{name: columns[name] for name in FEATURE_NAMES},
            LABEL_COLUMN: columns[LABEL_COLUMN],
        },
        copy=False,
    )
    extra = list(RAW_COLUMNS) if raw else []
    if raw:
        for name in RAW_COLUMNS:
            frame[name] = columns[name]
    return frame[[*ID_COLUMNS, *SEGMENT_COLUMNS, *FEATURE_NAMES, LABEL_COLUMN, *extra]]


def _traits(config: CohortConfig, block: int) -> Traits:
    rng = stream(config.seed, "traits", block)
    if block == JOINER_BLOCK:
        n = max(1, round(JOINER_SHARE * config.users))
        return draw_traits(rng, n, age_mean=JOINER_AGE_MEAN, age_sd=JOINER_AGE_SD)
    return draw_traits(rng, config.users)


def _simulate_block(
    config: CohortConfig,
    plan: DriftPlan,
    block: int,
    traits: Traits,
    first_day: int,
    first_user: int,
) -> dict[str, np.ndarray]:
    """Simulate users who start on day ``first_day``; returns flat columns, one entry per row."""
    seed, m = config.seed, config.moments_per_day
    n_days = config.days - first_day
    total = BURN_IN_DAYS + n_days
    # Night j ends on day night_days[j]; one extra night gives the last day its bedtime.
    night_days = first_day - BURN_IN_DAYS + np.arange(total + 1)
    type_days = night_days[0] - 1 + np.arange(total + 2)
    out = slice(BURN_IN_DAYS, total)
    out_days = night_days[out]

    types = day_types(
        traits, stream(seed, "schedule", block), type_days, config.start_date.weekday()
    )
    ill = draw_illness(traits, stream(seed, "illness", block), total + 1)
    nights = draw_nights(traits, types, ill, stream(seed, "nights", block), night_days, plan)
    phys = draw_physiology(
        traits, ill, nights.duration_h, nights.day_sleep, stream(seed, "physiology", block)
    )
    rhr, rmssd = measure(traits, phys, stream(seed, "measurement", block), night_days, plan)

    # Waking span of day j: from night j's wake-up to night j+1's bedtime (a day later).
    span = nights.bed_h[:, 1:] + 24.0 - nights.wake_h[:, :-1]
    span_before = np.concatenate([np.full((traits.n, 1), 16.0), span[:, :-1]], axis=1)
    s_wake = pressure_at_wake(nights.duration_h[:, :-1], span_before)
    moments = draw_moments(
        nights.wake_h[:, out],
        span[:, out],
        s_wake[:, out],
        traits.chronotype_h,
        stream(seed, "moments", block),
        m,
    )

    labels = draw_labels(
        LabelInputs(
            deficit=moments.deficit,
            debt_h=phys.debt_h[:, out],
            rmssd_ms=phys.rmssd_ms[:, out],
            base_rmssd_ms=traits.base_rmssd_ms,
            rhr_bpm=phys.rhr_bpm[:, out],
            base_rhr_bpm=traits.base_rhr_bpm,
            ill=phys.ill[:, out].astype(np.float64),
            steps_ratio=phys.steps_day[:, out] / traits.steps_median[:, None],
            risk=traits.risk,
        ),
        stream(seed, "labels", block),
        out_days,
        plan,
    )

    # --- features, as the device would compute them --------------------------------------
    def per_moment(day_values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(day_values[..., None], moments.hours_awake.shape)

    extra = stream(seed, "moment_extras", block)
    z_hr = extra.standard_normal(moments.hours_awake.shape)
    miss = extra.random((3, *moments.hours_awake.shape))
    miss_night = extra.random((traits.n, n_days)) < SLEEP_DETAIL_MISSING_PROB

    rhr_o, rmssd_o = rhr[:, out], rmssd[:, out]
    midpoint = nights.midpoint_h[:, out]
    has_stages = np.array([d.has_stages for d in DEVICE_MODELS])[traits.device][:, None]

    hr_last_hour = (
        per_moment(phys.rhr_bpm[:, out] + 8.0 * phys.ill[:, out])
        + 12.0
        + 6.0 * moments.circadian
        + 10.0 * np.exp(0.6 * z_hr)
    )
    hr_last_hour = np.where(
        miss[0] < HR_MISSING_PROB, np.nan, np.clip(np.round(hr_last_hour, 1), 25, 230)
    )
    day_share = np.clip(moments.hours_awake / per_moment(span[:, out]), 0.0, 1.0)
    steps_prev, steps_today = (
        phys.steps_day[:, BURN_IN_DAYS - 1 : total - 1],
        phys.steps_day[:, out],
    )
    steps = per_moment(steps_prev) * (1.0 - day_share) + per_moment(steps_today) * day_share
    steps = np.where(miss[1] < STEPS_MISSING_PROB, np.nan, np.clip(np.round(steps), 0, 100_000))

    day_features = {
        "sleep_duration_h": np.round(nights.duration_h[:, out], 3),
        "sleep_efficiency": np.round(nights.efficiency[:, out], 4),
        "resting_hr_bpm": rhr_o,
        "hrv_rmssd_ms": rmssd_o,
        "sleep_latency_min": np.where(miss_night, np.nan, nights.latency_min[:, out]),
        "waso_min": np.where(miss_night, np.nan, nights.waso_min[:, out]),
        "awakenings": np.where(miss_night, np.nan, nights.awakenings[:, out]),
        "deep_sleep_pct": np.where(has_stages, nights.deep_pct[:, out], np.nan),
        "rem_sleep_pct": np.where(has_stages, nights.rem_pct[:, out], np.nan),
    }
    date_offset = np.floor(moments.clock_h / 24.0).astype(np.int64)
    date_index = np.clip(np.arange(n_days)[None, :, None] + date_offset, 0, None)
    # From what the device measured: the sleep durations it reports, not the unrounded truth.
    night_baselines, fatigue_rate = _baselines(
        traits.sleep_goal_h,
        day_features["sleep_duration_h"],
        midpoint,
        rhr_o,
        rmssd_o,
        labels,
        date_index,
    )
    day_features.update(night_baselines)
    local_hour = np.round(moments.clock_h % 24.0, 3) % 24.0
    moment_features = {
        "hours_awake": moments.hours_awake,
        "local_hour": local_hour,
        "hr_last_hour_bpm": hr_last_hour,
        "steps_24h": steps,
        "recent_fatigue_rate_14d": np.round(fatigue_rate, 6),
    }

    day0 = datetime.combine(config.start_date, datetime.min.time(), tzinfo=UTC)
    day0_ns = int(day0.timestamp()) * 1_000_000_000
    clock_s = np.round((out_days[None, :, None] * 24.0 + moments.clock_h) * 3600.0)
    measured_ns = day0_ns + clock_s.astype(np.int64) * 1_000_000_000

    n_rows = labels.size
    per_user = n_days * m

    def per_row(user_values: np.ndarray) -> np.ndarray:
        return np.repeat(user_values, per_user)

    columns: dict[str, np.ndarray] = {
        "event_id": random_uuids(stream(seed, "event_ids", block), labels.shape),
        "user_code": per_row(first_user + np.arange(traits.n)),
        "n_users": np.array([traits.n]),
        "measured_at_ns": measured_ns.ravel(),
        "device_model": per_row(traits.device),
        "platform": per_row(traits.platform),
        "app_version": per_row(traits.app_version),
        LABEL_COLUMN: labels.ravel(),
        "sleep_midpoint_h": per_moment(midpoint).reshape(n_rows).astype(np.float64),
        "sleep_goal_h": per_row(traits.sleep_goal_h),
    }
    for name, values in day_features.items():
        columns[name] = per_moment(values).reshape(n_rows).astype(np.float64)
    for name, values in moment_features.items():
        columns[name] = values.reshape(n_rows).astype(np.float64)
    return columns


def _baselines(
    goal_h: np.ndarray,
    sleep_h: np.ndarray,
    midpoint_h: np.ndarray,
    resting_hr: np.ndarray,
    rmssd: np.ndarray,
    labels: np.ndarray,
    date_index: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The personal baselines a device computes, from the shared definition: the nightly ones
    ``(users, days)`` and the fatigue-report rate ``(users, days, moments)``.

    Each user's calendar runs from their first output day to the last date a moment falls on
    (a late moment can fall on the date after the last day); every moment is a report.
    """
    users, n_days = sleep_h.shape
    n_dates = max(n_days, int(date_index.max()) + 1)
    first_row = np.repeat(np.arange(users) * n_dates, n_dates)

    def on_calendar(day_values: np.ndarray) -> np.ndarray:
        laid = np.full((users, n_dates), np.nan)
        laid[:, :n_days] = day_values
        return laid.ravel()

    flat_dates = (np.arange(users)[:, None, None] * n_dates + date_index).ravel()
    size = users * n_dates
    calendar = DayCalendar(
        first_row=first_row,
        sleep_h=on_calendar(sleep_h),
        midpoint_h=on_calendar(midpoint_h),
        resting_hr_bpm=on_calendar(resting_hr),
        hrv_rmssd_ms=on_calendar(rmssd),
        reports=np.bincount(flat_dates, minlength=size).astype(np.float64),
        positives=np.bincount(flat_dates, weights=labels.ravel().astype(float), minlength=size),
    )
    nights = (np.arange(users)[:, None] * n_dates + np.arange(n_days)[None, :]).ravel()
    nightly = personal_baselines(
        calendar,
        Moments(
            night_row=nights,
            date_row=nights,
            sleep_h=sleep_h.ravel(),
            midpoint_h=midpoint_h.ravel(),
            resting_hr_bpm=resting_hr.ravel(),
            hrv_rmssd_ms=rmssd.ravel(),
            sleep_goal_h=np.repeat(goal_h, n_days),
        ),
    )
    per_moment = personal_baselines(
        calendar,
        Moments(
            night_row=flat_dates,
            date_row=flat_dates,
            **{k: np.full(flat_dates.size, np.nan) for k in _MOMENT_RAW},
        ),
    )
    by_night = {
        name: nightly[name].reshape(users, n_days)
        for name in BASELINE_FEATURES
        if name != "recent_fatigue_rate_14d"
    }
    return by_night, per_moment["recent_fatigue_rate_14d"].reshape(labels.shape)


_MOMENT_RAW = ("sleep_h", "midpoint_h", "resting_hr_bpm", "hrv_rmssd_ms", "sleep_goal_h")
