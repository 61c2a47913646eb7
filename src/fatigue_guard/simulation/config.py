"""What a simulation run is asked for: cohort size, length, scenario and seed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final

SCENARIOS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "none": "no drift: the cohort behaves the same on every day",
        "hrv_population_shift": "an older cohort joins at the start day: lower RMSSD",
        "device_firmware": "one device model's RMSSD reads x0.7 from the start day",
        "seasonal_sleep": "shorter, less efficient sleep from the start day",
        "concept_shift": "the relation between features and fatigue changes at the start day",
        "label_shift": "more fatigue events from the start day",
    }
)
"""Drift scenarios by name, with a one-line description (used by the CLI help)."""


@dataclass(frozen=True, slots=True)
class CohortConfig:
    """Parameters of one simulated cohort.

    ``drift_start`` is the first drifted day, counted from ``start_date`` (day 0). ``None``
    means "half-way through" for a drift scenario and is ignored for ``"none"``.
    """

    users: int = 2000
    days: int = 30
    moments_per_day: int = 4
    scenario: str = "none"
    drift_start: int | None = None
    seed: int = 0
    start_date: date = date(2026, 1, 5)

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be >= 1, got {self.users}")
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")
        if not 1 <= self.moments_per_day <= 24:
            raise ValueError(f"moments_per_day must be in 1..24, got {self.moments_per_day}")
        if self.scenario not in SCENARIOS:
            known = ", ".join(SCENARIOS)
            raise ValueError(f"unknown scenario {self.scenario!r}; choose one of: {known}")
        if self.drift_start is not None and not 0 <= self.drift_start < self.days:
            raise ValueError(f"drift_start must be in 0..{self.days - 1}, got {self.drift_start}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    @property
    def effective_drift_start(self) -> int | None:
        """The first drifted day, or ``None`` when nothing drifts."""
        if self.scenario == "none":
            return None
        return self.days // 2 if self.drift_start is None else self.drift_start
