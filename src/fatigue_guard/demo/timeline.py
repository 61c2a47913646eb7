"""The loop's simulated calendar: which days train the baseline and which days the phones send.

One seeded cohort covers every phase, so the people who trained the baseline are the people whose
phones send the next days, and the drift scenario starts on a known day:

    | baseline (trained on) | normal | drift begins ...  | live traffic | after the swap |
    0                   train_days          ^monitor's now

The cohort ends in the past week (the API takes measurement times up to a day ahead of its clock
only; the retraining job reads the labelled live records of the last 28 days) and always starts
on a Monday: weekdays shape the simulated schedules, so a fixed weekday makes every run of the
same configuration the same cohort, whatever day it runs. The monitor judges the week that ends
where the drift phase ends (``monitor_end``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from fatigue_guard.simulation import SCENARIOS, CohortConfig, simulate_cohort


@dataclass(frozen=True)
class LoopConfig:
    """Sizes and knobs of the full demo; the defaults keep it within a few minutes on 2 cores."""

    scenario: str = "hrv_population_shift"
    users: int = 240
    seed: int = 1
    train_days: int = 21
    normal_days: int = 2  # phones before the drift: the monitor's window starts with these
    drift_days: int = 5  # the rest of the monitor's week
    live_days: int = 3  # what the always-on phones send while retraining and the swap run
    after_days: int = 3  # sent after the swap: the precision that counts
    # The default hyperparameters only: a time budget tries more candidates on a faster
    # machine, and the loop's numbers should be the same wherever it runs.
    search_budget_s: float = 0.0
    n_estimators: int = 60
    offline_share: float = 0.25
    offline_period: int = 5  # moments per online / offline stretch of an offline-prone phone
    feedback_share: float = 0.3
    concurrency: int = 4  # phones running at once in a phase
    live_phones: int = 12
    live_rate_per_s: float = 30.0
    model_poll_interval_s: float = 1.0
    blob_flush_max_age_s: float = 0.5
    swap_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; one of {', '.join(SCENARIOS)}")
        days = (self.train_days, self.normal_days, self.drift_days, self.live_days, self.after_days)
        if min(days) < 1:
            raise ValueError("every phase needs at least one day")

    @property
    def days(self) -> int:
        return (
            self.train_days + self.normal_days + self.drift_days + self.live_days + self.after_days
        )

    @property
    def drift_start(self) -> int:
        return self.train_days + self.normal_days


@dataclass(frozen=True)
class Timeline:
    config: LoopConfig
    cohort: pd.DataFrame
    start: datetime  # 00:00 UTC of day 0

    def day(self, index: int) -> datetime:
        return self.start + timedelta(days=index)

    def between(self, first: int, stop: int | None) -> pd.DataFrame:
        """Rows measured from day ``first`` to before day ``stop`` (``None``: to the end)."""
        stamps = self.cohort["measured_at"]
        mask = stamps >= self.day(first)
        if stop is not None:
            mask &= stamps < self.day(stop)
        return self.cohort[mask]

    @property
    def baseline(self) -> pd.DataFrame:
        return self.between(0, self.config.train_days)

    @property
    def normal(self) -> pd.DataFrame:
        c = self.config
        return self.between(c.train_days, c.drift_start)

    @property
    def drift(self) -> pd.DataFrame:
        c = self.config
        return self.between(c.drift_start, c.drift_start + c.drift_days)

    @property
    def live(self) -> pd.DataFrame:
        c = self.config
        first = c.drift_start + c.drift_days
        return self.between(first, first + c.live_days)

    @property
    def after(self) -> pd.DataFrame:
        c = self.config
        return self.between(c.drift_start + c.drift_days + c.live_days, None)

    @property
    def monitor_end(self) -> datetime:
        c = self.config
        return self.day(c.drift_start + c.drift_days)

    @property
    def monitor_window(self) -> timedelta:
        return timedelta(days=self.config.normal_days + self.config.drift_days)

    @property
    def joiners(self) -> set[str]:
        """People who first appear once the drift began (the older cohort of that scenario)."""
        before = set(self.between(0, self.config.drift_start)["user_id"].astype(str))
        return set(self.cohort["user_id"].astype(str)) - before


def simulate_timeline(config: LoopConfig, today: date | None = None) -> Timeline:
    today = today or datetime.now(UTC).date()
    latest = today - timedelta(days=config.days)
    first = latest - timedelta(days=latest.weekday())  # the Monday on or before
    cohort = simulate_cohort(
        CohortConfig(
            users=config.users,
            days=config.days,
            scenario=config.scenario,
            drift_start=config.drift_start if config.scenario != "none" else None,
            seed=config.seed,
            start_date=first,
        )
    )
    cohort["user_id"] = cohort["user_id"].astype(str)
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    return Timeline(config, cohort, start)
