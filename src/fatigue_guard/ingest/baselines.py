"""Causal personal baselines on a per-person day calendar.

Every person gets one row per calendar day from their first to their last date, so that "the 14
days before D" is a fixed number of rows and a missing day is a gap, not a shorter window. A
baseline at day D uses days ``D - window .. D - 1`` only: what a device knew that morning.

The windows and the warm-up match the definitions the simulator uses for the same contract
features (14-day personal baselines, a 7-night sleep debt, nothing before 3 days of history), so
real and simulated tables mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

WARMUP_DAYS: Final[int] = 3
BASELINE_WINDOW_DAYS: Final[int] = 14
DEBT_WINDOW_DAYS: Final[int] = 7
# An export knows no sleep goal; the person's usual sleep over the previous four weeks stands in
# for "personal need" (long enough that one bad week does not redefine it).
SLEEP_NEED_WINDOW_DAYS: Final[int] = 28
_DAY: Final[pd.Timedelta] = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Calendar:
    """Rows ``(user_id, date)``, contiguous days per user, users in sorted order."""

    frame: pd.DataFrame
    # For each row, the row position of its user's first day: windows never reach past it.
    first_row: np.ndarray

    @classmethod
    def spanning(cls, *keys: pd.DataFrame) -> Calendar:
        """The days each user appears on in any of ``keys`` (``user_id, date`` frames), with
        the gaps between filled in."""
        both = pd.concat([k[["user_id", "date"]] for k in keys], ignore_index=True).dropna()
        if both.empty:
            empty = pd.DataFrame(
                {"user_id": pd.Series(dtype="string"), "date": pd.Series(dtype="datetime64[ns]")}
            )
            return cls(empty, np.zeros(0, dtype=np.int64))
        spans = both.groupby("user_id", sort=True)["date"].agg(["min", "max"])
        lengths = ((spans["max"] - spans["min"]) // _DAY).to_numpy(dtype=np.int64) + 1
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        first_row = np.repeat(starts, lengths)
        offsets = np.arange(int(lengths.sum())) - first_row
        dates = np.repeat(spans["min"].to_numpy(dtype="datetime64[ns]"), lengths) + offsets.astype(
            "timedelta64[D]"
        )
        frame = pd.DataFrame(
            {
                "user_id": pd.array(np.repeat(spans.index.to_numpy(), lengths), dtype="string"),
                "date": pd.to_datetime(dates).astype("datetime64[ns]"),
            }
        )
        return cls(frame, first_row)

    def __len__(self) -> int:
        return len(self.frame)

    def positions(self, user_id: pd.Series, date: pd.Series) -> np.ndarray:
        """Row position of each ``(user_id, date)``; -1 where the calendar has no such day."""
        index = self.frame.assign(_pos=np.arange(len(self.frame)))
        keys = pd.DataFrame(
            {"user_id": pd.array(user_id, dtype="string"), "date": pd.to_datetime(date)}
        ).astype({"date": "datetime64[ns]"})
        found = keys.merge(index, on=["user_id", "date"], how="left")["_pos"]
        return found.fillna(-1).to_numpy(dtype=np.int64)

    def place(self, user_id: pd.Series, date: pd.Series, values: pd.Series) -> np.ndarray:
        """``values`` laid on the calendar (NaN on days without one); one value per day."""
        out = np.full(len(self.frame), np.nan)
        pos = self.positions(user_id, date)
        keep = pos >= 0
        out[pos[keep]] = np.asarray(values, dtype="float64")[keep]
        return out

    def prior_sum_count(self, values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
        """Sum and count of the non-missing values over the ``window`` days before each day."""
        present = ~np.isnan(values)
        cum_sum = np.r_[0.0, np.cumsum(np.where(present, values, 0.0))]
        cum_count = np.r_[0, np.cumsum(present)]
        rows = np.arange(len(values))
        low = np.maximum(rows - window, self.first_row)
        return cum_sum[rows] - cum_sum[low], cum_count[rows] - cum_count[low]

    def prior_mean(
        self, values: np.ndarray, window: int = BASELINE_WINDOW_DAYS, min_count: int = WARMUP_DAYS
    ) -> np.ndarray:
        """Mean over the ``window`` days before each day; NaN with fewer than ``min_count``."""
        total, count = self.prior_sum_count(values, window)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count >= min_count, total / count, np.nan)

    @staticmethod
    def at(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``values`` at calendar ``positions`` (NaN where a position is -1)."""
        out = np.full(len(positions), np.nan)
        ok = positions >= 0
        out[ok] = values[positions[ok]]
        return out


def sleep_debt(
    need_h: np.ndarray, earlier_sum_h: np.ndarray, earlier_nights: np.ndarray, tonight_h: np.ndarray
) -> np.ndarray:
    """Hours short of ``need_h`` over the last 7 nights, this one included, as a 7-night total.

    ``earlier_sum_h`` / ``earlier_nights``: sleep and count of the recorded nights of the 6 days
    before. Unrecorded nights are unknown, not zero sleep: the shortfall of the recorded ones is
    scaled up to seven nights.
    """
    nights = earlier_nights + 1
    mean_sleep = (earlier_sum_h + tonight_h) / nights
    return DEBT_WINDOW_DAYS * (need_h - mean_sleep)


def clock_shift(hours: np.ndarray, usual: np.ndarray) -> np.ndarray:
    """``hours - usual`` on a 24-hour clock, in ``[-12, 12)``: an evening sleep whose midpoint
    is 21:30 is 5.5 h earlier than a usual 03:00, not 18.5 h later."""
    return np.mod(hours - usual + 12.0, 24.0) - 12.0
