"""The live window as numpy arrays: converted once, shared by every signal.

A window comes from the blob feature store (:mod:`fatigue_guard.monitoring.live`, Arrow straight
to these arrays) or as a contract-format DataFrame (a file given with ``--current``,
:func:`prepare_window`). Signals need float columns, integer segment codes, scores, alerts and
labels; converting each once, and summarising each column once (:meth:`Window.summary`), keeps
the monitor at a few passes over memory per column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from fatigue_guard.contract.features import FEATURE_NAMES, LABEL_COLUMN, SEGMENT_COLUMNS
from fatigue_guard.model.stats import design_effect
from fatigue_guard.monitoring.summary import (
    ColumnSummary,
    Grouping,
    PersonSums,
    build_grouping,
    summarise,
)

SCORE_COLUMN = "probability"
ALERT_COLUMN = "alert"
MISSING_SEGMENT = "(none)"


@dataclass
class Segment:
    """One segment column: an integer code per row and the value of each code."""

    codes: np.ndarray
    values: list[str]


@dataclass
class Window:
    """What the signals read: ``features[name]`` float64 (NaN = missing), optional extras.

    ``features`` is any mapping: the live reader's loads each column from local files when it
    is asked for (:class:`fatigue_guard.monitoring.live.SpilledColumns`), so a signal should
    take one feature at a time and not keep the arrays it has finished with.
    """

    rows: int
    features: Mapping[str, np.ndarray]
    segments: dict[str, Segment] = field(default_factory=dict)
    scores: np.ndarray | None = None
    alerts: np.ndarray | None = None
    # Label per row as float: 1.0 / 0.0, NaN where no feedback arrived.
    labels: np.ndarray | None = None
    # measured_at as int64 nanoseconds since the epoch (UTC), for per-day series.
    measured_ns: np.ndarray | None = None
    # Rows whose prediction came from the monitored model version (after a deployment the
    # window still holds the previous version's scores, which must not count as score drift).
    scored: np.ndarray | None = None
    # user_id as integer codes (clusters for the design effect), and how many users.
    user_codes: np.ndarray | None = None
    users: int = 0
    _summaries: dict[str, ColumnSummary] = field(default_factory=dict, init=False, repr=False)
    _counts: dict[tuple[int, int], list[np.ndarray]] = field(
        default_factory=dict, init=False, repr=False
    )

    def design_effect(self, values: np.ndarray) -> float:
        """How much the rows of one user repeat themselves for ``values`` (>= 1)."""
        return design_effect(self.user_codes, values, self.users)

    @cached_property
    def grouping(self) -> Grouping:
        """Rows grouped by (user, segment cell): built once, shared by every summary."""
        segments = {name: (s.codes, len(s.values)) for name, s in self.segments.items()}
        return build_grouping(self.rows, self.user_codes, self.users, segments)

    def summary(self, name: str) -> ColumnSummary:
        """Moments, design effects and per-segment moments of a feature (or of ``SCORE_COLUMN``),
        computed on first use: feature drift, physiology, the segment screen, attribution and
        data quality all read the same one."""
        if name not in self._summaries:
            values = self.scores if name == SCORE_COLUMN else self.features[name]
            assert values is not None, f"the window has no {name}"
            self._summaries[name] = self._shared(summarise(values, self.grouping))
        return self._summaries[name]

    def _count(self, counts: np.ndarray) -> np.ndarray:
        """``counts``, or the equal array an earlier summary holds (made read-only)."""
        # A hash of the bytes finds the candidate without comparing every earlier array.
        same = self._counts.setdefault((len(counts), hash(counts.tobytes())), [])
        for known in same:
            if np.array_equal(known, counts):
                return known
        counts.setflags(write=False)
        same.append(counts)
        return counts

    def _shared(self, summary: ColumnSummary) -> ColumnSummary:
        """``summary`` with its row and present-value counts shared with the other columns'.

        Every column's summary holds rows per person, per person cell and per segment value,
        the same arrays for every column, and present counts equal to them when nothing is
        missing. With a hundred thousand people and a few dozen columns the copies would be a
        few hundred megabytes; one copy of each is kept instead.
        """

        def persons(p: PersonSums) -> PersonSums:
            return replace(p, rows=self._count(p.rows), n=self._count(p.n))

        return replace(
            summary,
            persons=persons(summary.persons) if summary.persons is not None else None,
            segment_persons=(
                {c: persons(p) for c, p in summary.segment_persons.items()}
                if summary.segment_persons is not None
                else None
            ),
            segments={
                c: replace(m, rows=self._count(m.rows), n=self._count(m.n))
                for c, m in summary.segments.items()
            },
            pair_n=self._count(summary.pair_n) if summary.pair_n is not None else None,
        )

    @property
    def scored_mask(self) -> np.ndarray:
        return self.scored if self.scored is not None else np.ones(self.rows, dtype=bool)

    def predictions_only(self) -> Window:
        """The scored rows' predictions, labels and times (no features): performance input."""
        if self.scored is None:
            return self
        keep = self.scored

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[keep]

        return Window(
            rows=int(keep.sum()),
            features={},
            scores=cut(self.scores),
            alerts=cut(self.alerts),
            labels=cut(self.labels),
            measured_ns=cut(self.measured_ns),
            user_codes=cut(self.user_codes),
            users=self.users,
        )


def _float_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    column = frame[name]
    if column.dtype == np.float64:
        return column.to_numpy()
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _segment(column: pd.Series) -> Segment:
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    values = [str(v) for v in uniques]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(values), codes)
        values.append(MISSING_SEGMENT)
    return Segment(codes=codes.astype(np.int64), values=values)


def _labels(frame: pd.DataFrame) -> np.ndarray | None:
    if LABEL_COLUMN not in frame.columns:
        return None
    column = frame[LABEL_COLUMN]
    if column.dtype == np.float64:  # the live reader's 1.0 / 0.0 / NaN
        return column.to_numpy()
    if column.dtype == bool:
        return column.to_numpy(dtype=np.float64)
    return column.astype("boolean").to_numpy(dtype=np.float64, na_value=np.nan)


def prepare_window(
    frame: pd.DataFrame, threshold: float | None = None, model_version: str | None = None
) -> Window:
    """Arrays for ``frame``; alerts come from the served ``alert`` column, else from
    ``probability >= threshold`` (offline tables scored after the fact). With
    ``model_version``, only that version's predictions count as scored."""
    scores = _float_column(frame, SCORE_COLUMN) if SCORE_COLUMN in frame.columns else None
    scored = None
    if model_version is not None and "model_version" in frame.columns and scores is not None:
        scored = (frame["model_version"].astype("string") == str(model_version)).to_numpy(
            dtype=bool, na_value=False
        )
        scores = np.where(scored, scores, np.nan)
    if ALERT_COLUMN in frame.columns:
        alerts = frame[ALERT_COLUMN].to_numpy(dtype=bool, na_value=False)
    elif scores is not None and threshold is not None:
        alerts = scores >= threshold
    else:
        alerts = None
    user_codes, users = None, 0
    if "user_id" in frame.columns:
        codes, uniques = pd.factorize(frame["user_id"], use_na_sentinel=False)
        user_codes, users = codes.astype(np.int64), len(uniques)
    measured = None
    if "measured_at" in frame.columns:
        stamps = pd.to_datetime(frame["measured_at"], utc=True).dt.tz_convert(None)
        measured = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return Window(
        rows=len(frame),
        features={name: _float_column(frame, name) for name in FEATURE_NAMES},
        segments={c: _segment(frame[c]) for c in SEGMENT_COLUMNS if c in frame.columns},
        scores=scores,
        alerts=alerts,
        labels=_labels(frame),
        measured_ns=measured,
        scored=scored,
        user_codes=user_codes,
        users=users,
    )
