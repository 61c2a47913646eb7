"""Per-column summaries that every signal shares: one grouped pass over the rows per column.

Feature drift needs each column's design effect (moments per user) and missing share; the
segment screen and attribution need moments per segment value; physiology needs the population
mean and variance; data quality needs missing counts per segment value. Computed one by one that
is about a hundred grouped passes over a window. Here the rows are grouped once by
(user, segment cell) — a user has one or a few cells, so there are barely more pairs than
users — and a column costs three weighted ``bincount`` over that pair code. The small per-pair
sums are then re-aggregated to users, to each segment column's values and to the population.
Sums are additive, so the moments equal those of grouping the rows directly (up to the order of
float summation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fatigue_guard.model.stats import design_effect_from_moments, moments_from_sums

# Segment cells are numbered by mixed radix; past this many, renumber densely (no overflow).
_MAX_CELL_SPAN = 2**31


@dataclass(frozen=True)
class Grouping:
    """The window's rows grouped by (user, segment cell) pair, and where each pair belongs."""

    codes: np.ndarray  # pair code of each row
    rows: np.ndarray  # rows per pair (float64, for weighted sums)
    users: np.ndarray | None  # user code of each pair; None without user ids
    user_count: int
    segments: dict[str, np.ndarray]  # segment column -> value code of each pair
    segment_sizes: dict[str, int]

    @property
    def pairs(self) -> int:
        return len(self.rows)

    def segment_rows(self, column: str) -> np.ndarray:
        """Rows per value of one segment column."""
        return _sum_by(self.segments[column], self.segment_sizes[column], self.rows)


def build_grouping(
    rows: int,
    user_codes: np.ndarray | None,
    user_count: int,
    segments: Mapping[str, tuple[np.ndarray, int]],
) -> Grouping:
    """Group ``rows`` by user and segment values (``segments``: column -> (codes, values))."""
    key = np.zeros(rows, dtype=np.int64)
    span = 1
    for codes, size in segments.values():
        key = key * size + codes
        span *= max(size, 1)
        if span > _MAX_CELL_SPAN:
            dense, uniques = pd.factorize(key)
            key, span = dense.astype(np.int64), len(uniques)
    if user_codes is not None:
        key += user_codes.astype(np.int64) * span
    codes, uniques = pd.factorize(key)
    pairs = len(uniques)
    # Any row of a pair tells its user and segment values (they are the pair's definition), so
    # the order in which a scatter with repeated indices writes does not matter.
    row_of_pair = np.empty(pairs, dtype=np.intp)
    row_of_pair[codes] = np.arange(rows)
    return Grouping(
        codes=codes,
        rows=np.bincount(codes, minlength=pairs).astype(np.float64),
        users=user_codes[row_of_pair] if user_codes is not None else None,
        user_count=user_count,
        segments={column: c[row_of_pair] for column, (c, _) in segments.items()},
        segment_sizes={column: size for column, (_, size) in segments.items()},
    )


@dataclass(frozen=True)
class GroupMoments:
    """Rows, present values, mean and variance (ddof 1) of one column per group."""

    rows: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray


@dataclass(frozen=True)
class ColumnSummary:
    """One column over the window: population moments, design effects, moments per segment."""

    rows: int
    n: int  # present (non-missing) values
    mean: float | None
    var: float | None  # ddof 1
    # Design effects of the values and of the missing indicator (see stats.design_effect).
    deff: float
    missing_deff: float
    segments: dict[str, GroupMoments]

    @property
    def missing(self) -> int:
        return self.rows - self.n


def _sum_by(index: np.ndarray, size: int, weights: np.ndarray) -> np.ndarray:
    return np.bincount(index, weights=weights, minlength=size)[:size]


def summarise(values: np.ndarray, grouping: Grouping) -> ColumnSummary:
    """The :class:`ColumnSummary` of ``values`` (float64, NaN = missing)."""
    missing = np.isnan(values)
    missing_count = int(np.count_nonzero(missing))
    codes, pairs = grouping.codes, grouping.pairs
    if missing_count:
        v = np.where(missing, 0.0, values)
        n = grouping.rows - np.bincount(codes, weights=missing, minlength=pairs)
    else:  # the common case: no copy, and present counts are the row counts
        v, n = values, grouping.rows
    del missing
    total = np.bincount(codes, weights=v, minlength=pairs)
    squares = np.bincount(codes, weights=v * v, minlength=pairs)
    del v

    present = float(n.sum())
    _, mean, var = moments_from_sums(
        np.array([present]), np.array([total.sum()]), np.array([squares.sum()])
    )
    deff = missing_deff = 1.0
    if grouping.users is not None and grouping.user_count >= 2:
        users, k = grouping.users, grouping.user_count
        n_user = _sum_by(users, k, n)
        deff = design_effect_from_moments(
            *moments_from_sums(n_user, _sum_by(users, k, total), _sum_by(users, k, squares))
        )
        if missing_count:  # a constant indicator has design effect 1
            rows_user = _sum_by(users, k, grouping.rows)
            missed = rows_user - n_user  # the indicator's sum and sum of squares alike
            missing_deff = design_effect_from_moments(*moments_from_sums(rows_user, missed, missed))
    segments = {}
    for column, index in grouping.segments.items():
        size = grouping.segment_sizes[column]
        n_seg = _sum_by(index, size, n)
        moments = moments_from_sums(
            n_seg, _sum_by(index, size, total), _sum_by(index, size, squares)
        )
        segments[column] = GroupMoments(grouping.segment_rows(column), *moments)
    return ColumnSummary(
        rows=len(values),
        n=int(present),
        mean=float(mean[0]) if present > 0 else None,
        var=float(var[0]) if present > 1 else None,
        deff=deff,
        missing_deff=missing_deff,
        segments=segments,
    )
