"""Fatigue self-reports: read them, and turn a score into the ``fatigue_event`` label by a rule.

Two sources: a PMSys wellness export per participant (``pmsys/wellness.csv``: one morning report
per row, ``effective_time_frame`` in UTC, 1-5 items where 1 is worst), or one CSV for everybody
with a user, a time and a score column. Either way the result is a table of reports:
``user_id``, ``reported_at`` (UTC; NaT when the time cannot be read) and ``score`` (NaN when the
value is missing or not a number), plus the raw text of both for the import report.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from fatigue_guard.ingest.errors import BadFileError, LabelRuleError, MissingFileError

WELLNESS_FILE: Final[str] = "pmsys/wellness.csv"
WELLNESS_TIME_COLUMN: Final[str] = "effective_time_frame"
DEFAULT_LABEL_COLUMN: Final[str] = "fatigue"
# PMSys fatigue: 1 very tired, 2 tired, 3 normal, 4 fresh, 5 very fresh (higher is better).
DEFAULT_LABEL_RULE: Final[str] = "<=2"
# The scales of the PMSys wellness items; a value outside its scale is a broken report, not a
# very bad or very good day.
PMSYS_SCALES: Final[dict[str, tuple[int, int]]] = {
    "fatigue": (1, 5),
    "mood": (1, 5),
    "sleep_quality": (1, 5),
    "soreness": (1, 5),
    "stress": (1, 5),
    "readiness": (0, 10),
}
REPORT_COLUMNS: Final[tuple[str, ...]] = (
    "user_id",
    "reported_at",
    "score",
    "raw_time",
    "raw_score",
)

_OPERATORS: Final[dict[str, Callable[[np.ndarray, float], np.ndarray]]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_RULE = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*$")
# An ISO time that says its own offset; anything else is local wall time.
_HAS_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"


@dataclass(frozen=True, slots=True)
class LabelRule:
    """``fatigue_event = score <op> value``, e.g. ``<=2``."""

    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> LabelRule:
        match = _RULE.match(text)
        if match is None:
            ops = ", ".join(_OPERATORS)
            raise LabelRuleError(
                f"label rule {text!r} is not an operator ({ops}) followed by a number, "
                "e.g. '<=2' (a fatigue event when the score is at most 2)"
            )
        return cls(match.group(1), float(match.group(2)))

    def __str__(self) -> str:
        return f"{self.op}{self.value:g}"

    def apply(self, scores: pd.Series) -> pd.Series:
        """Boolean events; missing scores give missing events (``boolean`` dtype)."""
        values = scores.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            events = _OPERATORS[self.op](values, self.value)
        return pd.Series(events, index=scores.index, dtype="boolean").mask(np.isnan(values))


def _read_csv(path: Path, participant: str | None, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise MissingFileError(f"{what} not found", participant=participant, path=path)
    try:
        # Everything as text: the import report quotes what the file said, not a parsed guess.
        return pd.read_csv(path, dtype="string", keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BadFileError(
            f"cannot be read as CSV ({what}): {exc}", participant=participant, path=path
        ) from None


def _require_columns(
    frame: pd.DataFrame, columns: list[str], path: Path, participant: str | None
) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadFileError(
            f"column(s) {', '.join(map(repr, missing))} missing "
            f"(the file has: {', '.join(frame.columns) or 'no columns'})",
            participant=participant,
            path=path,
        )


def parse_times(text: pd.Series, timezone: str) -> pd.Series:
    """ISO times to UTC; a time without an offset is wall time in ``timezone``. NaT if unreadable.

    Wall times that a clock change makes ambiguous or skips become NaT rather than a guess.
    """
    text = text.astype("string").str.strip()
    has_offset = text.str.contains(_HAS_OFFSET, regex=True, na=False).to_numpy(dtype=bool)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    if has_offset.any():
        aware = pd.to_datetime(text[has_offset], utc=True, format="ISO8601", errors="coerce")
        out[has_offset] = aware.astype("datetime64[ns, UTC]")
    naive_mask = ~has_offset & text.notna().to_numpy(dtype=bool)
    if naive_mask.any():
        naive = pd.to_datetime(text[naive_mask], format="ISO8601", errors="coerce")
        local = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        out[naive_mask] = local.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    return out


def _reports(
    users: pd.Series | str, times: pd.Series, scores: pd.Series, timezone: str
) -> pd.DataFrame:
    raw_scores = scores.astype("string").str.strip()
    return pd.DataFrame(
        {
            "user_id": users,
            "reported_at": parse_times(times, timezone),
            "score": pd.to_numeric(raw_scores, errors="coerce").astype("float64"),
            "raw_time": times.astype("string"),
            "raw_score": raw_scores,
        },
        index=times.index,
    )


def read_pmsys_wellness(
    participant_dir: Path, participant: str, label_column: str = DEFAULT_LABEL_COLUMN
) -> pd.DataFrame:
    """One participant's ``pmsys/wellness.csv`` as a report table (see the module docstring)."""
    path = participant_dir / WELLNESS_FILE
    frame = _read_csv(path, participant, "PMSys wellness reports")
    _require_columns(frame, [WELLNESS_TIME_COLUMN, label_column], path, participant)
    # PMSys writes UTC with a Z; the time zone only matters for a time without an offset.
    return _reports(participant, frame[WELLNESS_TIME_COLUMN], frame[label_column], "UTC")


def read_label_csv(
    path: Path,
    *,
    user_column: str,
    time_column: str,
    label_column: str,
    timezone: str,
) -> pd.DataFrame:
    """Reports for everybody from one CSV; times without an offset are wall time in ``timezone``."""
    frame = _read_csv(path, None, "label file")
    _require_columns(frame, [user_column, time_column, label_column], path, None)
    users = frame[user_column].astype("string").str.strip()
    return _reports(users, frame[time_column], frame[label_column], timezone)
