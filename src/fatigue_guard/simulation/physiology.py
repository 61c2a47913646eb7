"""Overnight physiology: illness, training load, sleep debt and what they do to HR and HRV.

The *true* values drive fatigue; the *measured* values are what the device reports (with
measurement noise, device gaps and, in ``device_firmware``, a biased sensor). Keeping the two
apart is what lets a sensor drift move the features without moving the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from fatigue_guard.simulation.scenarios import FIRMWARE_DEVICE, FIRMWARE_RMSSD_FACTOR, DriftPlan
from fatigue_guard.simulation.traits import DEVICE_MODELS, Traits

MAX_ILLNESS_DAYS: Final[int] = 6
DEBT_RETENTION: Final[float] = 0.75  # share of yesterday's sleep debt still felt today


@dataclass(frozen=True, slots=True)
class Physiology:
    """Arrays of shape ``(users, nights)``."""

    ill: np.ndarray  # bool
    load: np.ndarray  # training load of the day, 0 = rest
    debt_h: np.ndarray  # true accumulated sleep debt after the night (decaying sum)
    rhr_bpm: np.ndarray  # true overnight resting HR
    rmssd_ms: np.ndarray  # true overnight RMSSD
    steps_day: np.ndarray  # steps taken over the whole waking day


def draw_illness(traits: Traits, rng: np.random.Generator, n_days: int) -> np.ndarray:
    """Short illness episodes (2-6 days), bool of shape ``(users, n_days)``."""
    starts = rng.random((traits.n, n_days)) < traits.illness_rate[:, None]
    lengths = rng.integers(2, MAX_ILLNESS_DAYS + 1, (traits.n, n_days))
    ill = np.zeros((traits.n, n_days), dtype=bool)
    for k in range(MAX_ILLNESS_DAYS):  # at most 6 passes over whole arrays, not per row
        ill[:, k:] |= starts[:, : n_days - k] & (lengths[:, : n_days - k] > k)
    return ill


def sleep_debt(traits: Traits, duration_h: np.ndarray) -> np.ndarray:
    """Decaying sum of hours short of the true need: ``debt[j] = r * debt[j-1] + need - sleep``."""
    short = traits.sleep_need_h[:, None] - duration_h
    debt = np.empty_like(short)
    carry = np.zeros(traits.n)
    for j in range(short.shape[1]):  # recursion over days, vectorised over users
        carry = DEBT_RETENTION * carry + short[:, j]
        debt[:, j] = carry
    return debt


def draw_physiology(
    traits: Traits,
    ill: np.ndarray,
    duration_h: np.ndarray,
    day_sleep: np.ndarray,
    rng: np.random.Generator,
) -> Physiology:
    """True overnight HR/HRV: sleep debt, yesterday's training and illness raise HR, lower HRV."""
    shape = duration_h.shape
    z = rng.standard_normal((3, *shape))
    u = rng.random(shape)
    load = np.where(u < traits.train_prob[:, None], np.exp(0.4 * z[0]), 0.0)
    load_before = np.concatenate([np.zeros((traits.n, 1)), load[:, :-1]], axis=1)
    debt = sleep_debt(traits, duration_h)
    debt_pos = np.clip(debt, -2.0, None)

    log_rmssd = (
        np.log(traits.base_rmssd_ms)[:, None]
        - 0.045 * debt_pos
        - 0.12 * load_before
        - 0.30 * ill
        - 0.10 * day_sleep
        + 0.10 * z[1]
    )
    rmssd = np.clip(np.exp(log_rmssd), 3.0, 250.0)
    rhr = traits.base_rhr_bpm[:, None] + 0.6 * debt_pos + 2.5 * load_before + 6.0 * ill
    rhr = np.clip(rhr + 2.0 * day_sleep + 1.3 * z[2], 35.0, 120.0)
    steps = traits.steps_median[:, None] * np.exp(0.45 * load + 0.3 * z[0] * (load > 0))
    steps = np.clip(steps * np.where(ill, 0.6, 1.0), 300.0, 60_000.0)
    return Physiology(ill=ill, load=load, debt_h=debt, rhr_bpm=rhr, rmssd_ms=rmssd, steps_day=steps)


def measure(
    traits: Traits,
    phys: Physiology,
    rng: np.random.Generator,
    day_numbers: np.ndarray,
    plan: DriftPlan,
) -> tuple[np.ndarray, np.ndarray]:
    """What the device reports as (resting HR, RMSSD): noisy readings, RMSSD NaN for trackers
    without HRV, and biased low on the firmware device under ``device_firmware``."""
    z = rng.standard_normal((2, *phys.rmssd_ms.shape))
    rhr = np.clip(np.round(phys.rhr_bpm + 1.0 * z[0], 1), 25.0, 150.0)
    rmssd = phys.rmssd_ms * np.exp(0.08 * z[1])
    firmware = np.array([d.name == FIRMWARE_DEVICE for d in DEVICE_MODELS])[traits.device]
    biased = firmware[:, None] & plan.active("device_firmware", day_numbers)[None, :]
    rmssd = np.where(biased, rmssd * FIRMWARE_RMSSD_FACTOR, rmssd)
    has_hrv = np.array([d.has_hrv for d in DEVICE_MODELS])[traits.device]
    rmssd = np.clip(np.round(rmssd, 1), 1.0, 300.0)
    return rhr, np.where(has_hrv[:, None], rmssd, np.nan)
