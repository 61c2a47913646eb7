"""The label: was a fatigue event reported at this moment?

Drawn, not thresholded: log-odds from the person's baseline risk, the alertness deficit, sleep
debt and the physiological strain of the night, plus a bad-day effect nobody measures, then a
Bernoulli draw. The unmeasured parts are what keep the task honest (a model cannot be perfect).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from fatigue_guard.simulation.scenarios import LABEL_SHIFT_LOGIT, DriftPlan
from fatigue_guard.simulation.traits import person_risk


@dataclass(frozen=True, slots=True)
class LabelWeights:
    """Log-odds weights; the inputs are scaled so that one unit is a typical bad-day change."""

    intercept: float
    deficit: float  # per 0.2 of S - k*C above 0.55
    debt: float  # per 3 h of true decaying sleep debt
    hrv: float  # per 0.15 of log RMSSD below the person's baseline
    rhr: float  # per 4 bpm above the person's baseline
    ill: float
    activity: float  # per doubling of the day's steps over the person's median
    person_risk: float  # multiplies the person's baseline risk


BASE_WEIGHTS: Final[LabelWeights] = LabelWeights(
    intercept=-3.4,
    deficit=1.9,
    debt=0.35,
    hrv=0.35,
    rhr=0.25,
    ill=1.0,
    activity=0.0,
    person_risk=1.0,
)
# concept_shift: fatigue now follows exertion and the clock far more than the night's physiology,
# and who is at risk changes (a new fatigue definition, a new workload): same features, new rule.
CONCEPT_WEIGHTS: Final[LabelWeights] = LabelWeights(
    intercept=-3.0,
    deficit=0.35,
    debt=0.0,
    hrv=-0.2,
    rhr=0.0,
    ill=0.2,
    activity=1.4,
    person_risk=1.0,
)
DAY_EFFECT_SD: Final[float] = 1.0


@dataclass(frozen=True, slots=True)
class LabelInputs:
    """True (unmeasured) state behind each moment; day arrays ``(users, days)``, moment arrays
    ``(users, days, moments)``, person arrays ``(users,)``."""

    deficit: np.ndarray  # moment
    debt_h: np.ndarray  # day
    rmssd_ms: np.ndarray  # day
    base_rmssd_ms: np.ndarray  # person
    rhr_bpm: np.ndarray  # day
    base_rhr_bpm: np.ndarray  # person
    ill: np.ndarray  # day
    steps_ratio: np.ndarray  # day: steps / person's median
    risk: np.ndarray  # person


def _logit(x: LabelInputs, w: LabelWeights, risk: np.ndarray, day_effect: np.ndarray) -> np.ndarray:
    day = (
        w.intercept
        + w.person_risk * risk[:, None]
        + w.debt * x.debt_h / 3.0
        + w.hrv * -np.log(x.rmssd_ms / x.base_rmssd_ms[:, None]) / 0.15
        + w.rhr * (x.rhr_bpm - x.base_rhr_bpm[:, None]) / 4.0
        + w.ill * x.ill
        + w.activity * np.log2(x.steps_ratio)
        + day_effect
    )
    return day[..., None] + w.deficit * (x.deficit - 0.55) / 0.2


def draw_labels(
    x: LabelInputs, rng: np.random.Generator, day_numbers: np.ndarray, plan: DriftPlan
) -> np.ndarray:
    """Bool ``(users, days, moments)``; ``day_numbers`` are the days' numbers from the start."""
    day_effect = DAY_EFFECT_SD * rng.standard_normal(x.debt_h.shape)
    u = rng.random(x.deficit.shape)
    new_risk = person_risk(*rng.standard_normal((2, *x.risk.shape)))
    logit = _logit(x, BASE_WEIGHTS, x.risk, day_effect)

    concept = plan.active("concept_shift", day_numbers)
    if concept.any():
        shifted = _logit(x, CONCEPT_WEIGHTS, new_risk, day_effect)
        logit = np.where(concept[None, :, None], shifted, logit)
    logit = logit + LABEL_SHIFT_LOGIT * plan.active("label_shift", day_numbers)[None, :, None]
    return u < 1.0 / (1.0 + np.exp(-logit))
