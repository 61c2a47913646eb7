"""A per-person day calendar for the importer's tables.

Every person gets one row per calendar day from their first to their last date, so that "the 14
days before D" is a fixed number of rows and a missing day is a gap, not a shorter window: the
layout :mod:`fatigue_guard.contract.baselines` computes personal baselines on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

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

    @staticmethod
    def at(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``values`` at calendar ``positions`` (NaN where a position is -1)."""
        out = np.full(len(positions), np.nan)
        ok = positions >= 0
        out[ok] = values[positions[ok]]
        return out
