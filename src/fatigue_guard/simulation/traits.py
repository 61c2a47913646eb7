"""Per-user traits: who a person is, drawn once per simulated user.

Most of the fatigue signal on real wearable data is person-level, so these traits (sleep need,
chronotype, shift work, baseline physiology, baseline risk) are where people differ most.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """A tracker model: what it measures and how common it is in the cohort."""

    name: str
    share: float
    has_hrv: bool
    has_stages: bool
    ios_share: float  # share of its users on iOS (1.0 = iOS-only watch)


DEVICE_MODELS: Final[tuple[DeviceModel, ...]] = (
    DeviceModel("Pulse 4", 0.28, has_hrv=True, has_stages=True, ios_share=0.45),
    DeviceModel("Ring Gen2", 0.22, has_hrv=True, has_stages=True, ios_share=0.6),
    DeviceModel("Watch S", 0.20, has_hrv=True, has_stages=False, ios_share=1.0),
    DeviceModel("Band Lite", 0.18, has_hrv=False, has_stages=False, ios_share=0.3),
    DeviceModel("Pulse 3", 0.12, has_hrv=True, has_stages=True, ios_share=0.45),
)
PLATFORMS: Final[tuple[str, str]] = ("ios", "android")
APP_VERSIONS: Final[tuple[str, ...]] = ("2.3.1", "2.4.0", "2.5.2")
APP_VERSION_SHARES: Final[tuple[float, ...]] = (0.15, 0.35, 0.50)

# Employment: regular Mon-Fri day work, rotating shifts (incl. nights), or flexible / no job.
REGULAR, SHIFT, FLEXIBLE = 0, 1, 2
EMPLOYMENT_SHARES: Final[tuple[float, float, float]] = (0.72, 0.16, 0.12)
# Baseline fatigue risk between people, logit scale: the main person-level signal. A spread for
# everyone, plus a minority with a much higher risk (chronic conditions, demanding jobs, ...).
PERSON_RISK_SD: Final[float] = 0.7
HIGH_RISK_Z: Final[float] = 1.175  # standard-normal quantile: the top 12 % are high-risk
HIGH_RISK_LOGIT: Final[float] = 4.0


@dataclass(frozen=True, slots=True)
class Traits:
    """One array entry per user (all arrays have shape ``(n_users,)``)."""

    age: np.ndarray
    sleep_need_h: np.ndarray  # true habitual need, 6.5-9 h
    sleep_goal_h: np.ndarray  # the goal the user set in the app: need plus a guess error
    chronotype_h: np.ndarray  # shift of the body clock, + = evening type
    work_wake_h: np.ndarray  # alarm on day-work days, hours after midnight
    employment: np.ndarray  # REGULAR / SHIFT / FLEXIBLE
    rota_offset: np.ndarray  # where a shift worker is in the 14-day rota on day 0
    base_rhr_bpm: np.ndarray
    base_rmssd_ms: np.ndarray
    steps_median: np.ndarray
    train_prob: np.ndarray  # chance of a training session on a given day
    illness_rate: np.ndarray  # chance per day that an illness episode starts
    risk: np.ndarray  # baseline fatigue risk, logit scale
    device: np.ndarray  # index into DEVICE_MODELS
    platform: np.ndarray  # index into PLATFORMS
    app_version: np.ndarray  # index into APP_VERSIONS

    @property
    def n(self) -> int:
        return int(self.age.shape[0])


def person_risk(z_spread: np.ndarray, z_group: np.ndarray) -> np.ndarray:
    """Baseline fatigue risk (logit) from two standard-normal draws per person."""
    return PERSON_RISK_SD * z_spread + HIGH_RISK_LOGIT * (z_group > HIGH_RISK_Z)


def draw_traits(
    rng: np.random.Generator, n: int, *, age_mean: float = 38.0, age_sd: float = 11.0
) -> Traits:
    """Draw ``n`` users. The draw order is fixed: do not reorder (it would change every seed)."""
    z = rng.standard_normal((12, n))
    u = rng.random((4, n))

    age = np.clip(age_mean + age_sd * z[0], 18, 85)
    need = np.clip(7.7 + 0.55 * z[1], 6.5, 9.0)
    goal = np.clip(need + 0.3 * z[2], 6.0, 9.5)
    chrono = np.clip(0.9 * z[3], -2.5, 2.5)
    # Evening types set later alarms, but not as late as their clock would like: social jet lag.
    work_wake = np.clip(6.6 + 0.35 * chrono + 0.35 * z[4], 5.0, 8.5)
    employment = np.searchsorted(np.cumsum(EMPLOYMENT_SHARES), u[0] * 0.999999)
    rota_offset = rng.integers(0, 14, n)

    base_rhr = np.clip(61 + 7 * z[5] + 0.05 * (age - 38), 42, 95)
    # RMSSD is log-normal across people and falls with age (about 2 %/year).
    base_rmssd = np.clip(np.exp(np.log(48.0) - 0.02 * (age - 35) + 0.35 * z[6]), 8, 180)
    steps = np.clip(np.exp(np.log(7200) + 0.4 * z[7]), 1500, 30000)
    train_prob = np.clip(0.25 + 0.15 * z[8], 0.0, 0.8)
    illness_rate = np.clip(np.exp(np.log(0.012) + 0.5 * z[9]), 0.002, 0.05)
    risk = person_risk(z[10], z[11])

    shares = np.array([d.share for d in DEVICE_MODELS])
    device = np.searchsorted(np.cumsum(shares / shares.sum()), u[1] * 0.999999)
    ios_share = np.array([d.ios_share for d in DEVICE_MODELS])[device]
    platform = (u[2] >= ios_share).astype(np.int64)  # 0 = ios, 1 = android
    app_version = np.searchsorted(np.cumsum(APP_VERSION_SHARES), u[3] * 0.999999)

    return Traits(
        age=age,
        sleep_need_h=need,
        sleep_goal_h=goal,
        chronotype_h=chrono,
        work_wake_h=work_wake,
        employment=employment,
        rota_offset=rota_offset,
        base_rhr_bpm=base_rhr,
        base_rmssd_ms=base_rmssd,
        steps_median=steps,
        train_prob=train_prob,
        illness_rate=illness_rate,
        risk=risk,
        device=device,
        platform=platform,
        app_version=app_version,
    )
