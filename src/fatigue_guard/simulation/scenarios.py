"""Drift scenarios: what each one changes, from which day on.

Every component asks the plan "is scenario X active on these days?" and applies its own change
on top of the undrifted draw. Keeping the knobs here documents each scenario in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from fatigue_guard.simulation.config import SCENARIOS

# device_firmware: the device model whose RMSSD reads low after a firmware update.
FIRMWARE_DEVICE: Final[str] = "Ring Gen2"
FIRMWARE_RMSSD_FACTOR: Final[float] = 0.7
# hrv_population_shift: an older cohort joins; its size as a share of the original cohort.
JOINER_SHARE: Final[float] = 0.6
JOINER_AGE_MEAN: Final[float] = 64.0
JOINER_AGE_SD: Final[float] = 6.0
# seasonal_sleep: earlier waking (light, heat) and more wake after sleep onset.
SEASONAL_WAKE_EARLIER_H: Final[float] = 0.45
SEASONAL_EXTRA_WASO_MIN: Final[float] = 14.0
SEASONAL_EXTRA_LATENCY_MIN: Final[float] = 6.0
# label_shift: logit added to every moment's fatigue log-odds.
LABEL_SHIFT_LOGIT: Final[float] = 0.8


@dataclass(frozen=True, slots=True)
class DriftPlan:
    """Which scenario runs and its first drifted day (day 0 = the cohort's start date)."""

    scenario: str = "none"
    start: int | None = None

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}")

    def active(self, scenario: str, days: np.ndarray) -> np.ndarray:
        """Boolean mask: ``scenario`` is running and each day in ``days`` is at/after the start."""
        if self.scenario != scenario or self.start is None:
            return np.zeros(np.shape(days), dtype=bool)
        return np.asarray(days) >= self.start
