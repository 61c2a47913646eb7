"""Two-process alertness model (Borbély): homeostatic pressure S and circadian rhythm C.

S rises towards 1 while awake (time constant ~18 h) and falls during sleep (~4 h); C is a
24-hour rhythm whose peak sits later for evening types. Fatigue risk follows the deficit
``S - k * C``: long wakefulness, short sleep and the circadian night all raise it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

TAU_RISE_H: Final[float] = 18.2
TAU_DECAY_H: Final[float] = 4.2
CIRCADIAN_PEAK_H: Final[float] = 16.8  # acrophase of an average chronotype
CIRCADIAN_WEIGHT: Final[float] = 0.3
MIN_HOURS_AWAKE: Final[float] = 0.25


def pressure_at_wake(
    sleep_h: np.ndarray, awake_before_h: np.ndarray, s_initial: float = 0.6
) -> np.ndarray:
    """S at each wake-up, shape ``(users, nights)``.

    ``awake_before_h[:, j]`` is the time awake before night ``j``: S rises over that span,
    then decays over the night's sleep.
    """
    s_wake = np.empty_like(sleep_h)
    s = np.full(sleep_h.shape[0], s_initial)
    for j in range(sleep_h.shape[1]):  # recursion over nights, vectorised over users
        s_bed = 1.0 - (1.0 - s) * np.exp(-awake_before_h[:, j] / TAU_RISE_H)
        s = s_bed * np.exp(-sleep_h[:, j] / TAU_DECAY_H)
        s_wake[:, j] = s
    return s_wake


@dataclass(frozen=True, slots=True)
class Moments:
    """Arrays of shape ``(users, days, moments)``."""

    hours_awake: np.ndarray
    clock_h: np.ndarray  # hours after midnight of the wake day (may exceed 24)
    deficit: np.ndarray  # S - k * C at the moment
    circadian: np.ndarray  # C at the moment, in [-1, 1]


def draw_moments(
    wake_h: np.ndarray,
    awake_span_h: np.ndarray,
    s_wake: np.ndarray,
    chronotype_h: np.ndarray,
    rng: np.random.Generator,
    moments: int,
) -> Moments:
    """Spread ``moments`` measurements over each waking day (stratified, so every part of it
    is covered) and evaluate the alertness model there. Inputs are ``(users, days)``."""
    u = rng.random((*wake_h.shape, moments))
    k = np.arange(moments)[None, None, :]
    span = np.maximum(awake_span_h, MIN_HOURS_AWAKE + 0.5)[..., None]
    hours_awake = MIN_HOURS_AWAKE + (span - MIN_HOURS_AWAKE) * (k + u) / moments
    hours_awake = np.round(hours_awake, 3)
    clock = wake_h[..., None] + hours_awake
    s = 1.0 - (1.0 - s_wake[..., None]) * np.exp(-hours_awake / TAU_RISE_H)
    phase = 2.0 * np.pi * (clock - CIRCADIAN_PEAK_H - chronotype_h[:, None, None]) / 24.0
    c = np.cos(phase)
    return Moments(
        hours_awake=hours_awake, clock_h=clock, deficit=s - CIRCADIAN_WEIGHT * c, circadian=c
    )
