"""Each night's main sleep: timing from the schedule, then its structure.

Times are hours after midnight of the day the sleep *ends* on (a bedtime of -1.0 is 23:00 the
evening before). Night ``j`` is the sleep that ends on day ``j``; the features of day ``j``'s
moments describe it ("last main sleep").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fatigue_guard.simulation.scenarios import (
    SEASONAL_EXTRA_LATENCY_MIN,
    SEASONAL_EXTRA_WASO_MIN,
    SEASONAL_WAKE_EARLIER_H,
    DriftPlan,
)
from fatigue_guard.simulation.schedule import DAY_WORK, FREE, NIGHT_SHIFT
from fatigue_guard.simulation.traits import Traits


@dataclass(frozen=True, slots=True)
class Nights:
    """Arrays of shape ``(users, nights)``."""

    bed_h: np.ndarray
    wake_h: np.ndarray
    time_in_bed_h: np.ndarray
    latency_min: np.ndarray
    waso_min: np.ndarray
    awakenings: np.ndarray
    duration_h: np.ndarray
    efficiency: np.ndarray
    deep_pct: np.ndarray
    rem_pct: np.ndarray
    day_sleep: np.ndarray  # bool: slept by day after a night shift

    @property
    def midpoint_h(self) -> np.ndarray:
        return (self.bed_h + self.wake_h) / 2.0


def draw_nights(
    traits: Traits,
    types: np.ndarray,
    ill: np.ndarray,
    rng: np.random.Generator,
    day_numbers: np.ndarray,
    plan: DriftPlan,
) -> Nights:
    """Draw the nights ending on ``day_numbers``.

    ``types`` has one more column than ``day_numbers``: column ``j`` is the type of the day
    *before* night ``j`` ends (it decides whether that night was spent on a night shift), and
    column ``j + 1`` the type of the day it ends on (alarm or not).
    """
    shape = (traits.n, day_numbers.size)
    # Fixed-size draws only (no rng.poisson etc. whose consumption depends on the parameters), so
    # a scenario that changes a parameter late cannot shift the stream for earlier nights.
    z = rng.standard_normal((9, *shape))
    u = rng.random((2, *shape))
    prev_type, cur_type = types[:, :-1], types[:, 1:]
    day_sleep = prev_type == NIGHT_SHIFT
    chrono = traits.chronotype_h[:, None]
    need = traits.sleep_need_h[:, None]

    # Evening types go to bed later; people stay up before free days and sometimes go out late.
    bed = -1.0 + chrono + 0.45 * z[0] + np.where(cur_type == FREE, 0.6, 0.0)
    bed = bed + np.where(u[0] < 0.07, -1.3 * np.log1p(-u[1]), 0.0)
    natural_wake = bed + need + 0.1 * chrono + 0.55 * z[1]
    alarm = traits.work_wake_h[:, None] + 0.2 * z[2]
    wake = np.where(cur_type == DAY_WORK, np.minimum(natural_wake, alarm), natural_wake)
    # After a night shift: to bed around 07:30, a short day sleep.
    day_bed = 7.3 + 0.4 * z[0]
    day_wake = day_bed + np.clip(5.6 + 0.8 * z[1], 3.0, 9.0)
    bed = np.where(day_sleep, day_bed, bed)
    wake = np.where(day_sleep, day_wake, wake)

    seasonal = plan.active("seasonal_sleep", day_numbers)[None, :]
    # Early light wakes people; applied to the wake time only, so earlier days are untouched.
    wake = wake - seasonal * np.clip(SEASONAL_WAKE_EARLIER_H + 0.25 * z[7], 0.0, 1.5)
    time_in_bed = np.clip(wake - bed, 1.5, 14.0)
    wake = bed + time_in_bed

    age = traits.age[:, None]
    latency = np.exp(np.log(12.0) + 0.6 * z[3]) + 8.0 * ill + seasonal * SEASONAL_EXTRA_LATENCY_MIN
    waso = np.exp(np.log(22.0) + 0.012 * (age - 38) + 0.5 * z[4])
    waso = waso + 25.0 * ill + 20.0 * day_sleep + seasonal * SEASONAL_EXTRA_WASO_MIN
    # Being awake cannot take more than 60 % of the time in bed: scale both parts down.
    awake_min = latency + waso
    scale = np.minimum(1.0, 0.6 * time_in_bed * 60.0 / awake_min)
    latency = np.clip(np.round(latency * scale, 1), 0.0, 240.0)
    waso = np.clip(np.round(waso * scale, 1), 0.0, 600.0)
    duration = np.clip(time_in_bed - (latency + waso) / 60.0, 0.0, 16.0)
    efficiency = np.clip(duration / time_in_bed, 0.0, 1.0)
    # Count of awakenings: a rounded normal approximation to a Poisson with that mean.
    mean_awakenings = 0.8 + waso / 9.0
    awakenings = np.clip(np.round(mean_awakenings + np.sqrt(mean_awakenings) * z[8]), 0, 100)

    deep = np.clip(19.0 - 0.15 * (age - 38) + 3.5 * z[5], 3.0, 35.0)
    rem = np.clip(22.0 + 3.5 * z[6] - 4.0 * day_sleep, 6.0, 35.0)
    return Nights(
        bed_h=bed,
        wake_h=wake,
        time_in_bed_h=time_in_bed,
        latency_min=latency,
        waso_min=waso,
        awakenings=awakenings,
        duration_h=duration,
        efficiency=efficiency,
        deep_pct=np.round(deep, 1),
        rem_pct=np.round(rem, 1),
        day_sleep=day_sleep,
    )
