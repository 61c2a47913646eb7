"""Per-column summaries that every signal shares: one grouped pass over the rows per column.

Feature drift needs each column's design effect (moments per user) and missing share; the
segment screen and attribution need moments per segment value; physiology needs the population
mean and variance; data quality needs missing counts per segment value. Computed one by one that
is about a hundred grouped passes over a window. Here the rows are grouped once by
(user, segment cell) — a user has one or a few cells, so there are barely more pairs than
users — and a column costs three weighted ``bincount`` over that pair code. The small per-pair
sums are then re-aggregated to users, to each segment column's values and to the population.
Sums are additive, so the moments equal those of grouping the rows directly (up to the order of
float summation). The same per-pair sums, re-aggregated to users and to (user, segment value)
cells, give the per-person means and shares the person-level signals judge.
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
    # Segment column -> (person cell of each pair, segment value code of each cell): one cell per
    # user and value of that column (a user who updated the app mid-window has two).
    person_cells: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def pairs(self) -> int:
        return len(self.rows)

    def segment_rows(self, column: str) -> np.ndarray:
        """Rows per value of one segment column."""
        return _sum_by(self.segments[column], self.segment_sizes[column], self.rows)

    def cell_sums(self, column: str, per_pair: np.ndarray) -> np.ndarray:
        """Per-pair sums re-aggregated to the person cells of ``column``."""
        cells, values = self.person_cells[column]
        return _sum_by(cells, len(values), per_pair)

    def user_sums(self, per_pair: np.ndarray) -> np.ndarray:
        """Per-pair sums re-aggregated to users (requires user ids)."""
        assert self.users is not None
        return _sum_by(self.users, self.user_count, per_pair)


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
    pair_users = user_codes[row_of_pair] if user_codes is not None else None
    pair_segments = {column: c[row_of_pair] for column, (c, _) in segments.items()}
    person_cells = {}
    if pair_users is not None:
        for column, (_, size) in segments.items():
            cell_key = pair_users.astype(np.int64) * max(size, 1) + pair_segments[column]
            cells, keys = pd.factorize(cell_key)
            person_cells[column] = (cells, (np.asarray(keys) % max(size, 1)).astype(np.int64))
    return Grouping(
        codes=codes,
        rows=np.bincount(codes, minlength=pairs).astype(np.float64),
        users=pair_users,
        user_count=user_count,
        segments=pair_segments,
        segment_sizes={column: size for column, (_, size) in segments.items()},
        person_cells=person_cells,
    )


@dataclass(frozen=True)
class GroupMoments:
    """Rows, present values, mean and variance (ddof 1) of one column per group."""

    rows: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray


@dataclass(frozen=True)
class PersonSums:
    """Rows, present values and their sum per person (or per person cell of a segment column)."""

    rows: np.ndarray
    n: np.ndarray
    total: np.ndarray
    value: np.ndarray | None = None  # segment value code of each cell; None for users

    def means(self, minimum: int) -> np.ndarray:
        """Mean of each person with at least ``minimum`` values (others dropped)."""
        keep = self.n >= minimum
        return self.total[keep] / self.n[keep]


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
    # Per user, and per person cell of each segment column; None / empty without user ids.
    persons: PersonSums | None = None
    segment_persons: dict[str, PersonSums] | None = None
    # Present values and their sum per (user, segment cell) pair: re-aggregated to any subset of
    # the pairs (a segment value without the people of another) at no pass over rows.
    pair_n: np.ndarray | None = None
    pair_total: np.ndarray | None = None

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
    persons, segment_persons = None, {}
    if grouping.users is not None:
        users, k = grouping.users, grouping.user_count
        n_user, total_user = _sum_by(users, k, n), _sum_by(users, k, total)
        rows_user = _sum_by(users, k, grouping.rows)
        persons = PersonSums(rows_user, n_user, total_user)
        for column, (cells, cell_values) in grouping.person_cells.items():
            size = len(cell_values)
            segment_persons[column] = PersonSums(
                _sum_by(cells, size, grouping.rows),
                _sum_by(cells, size, n),
                _sum_by(cells, size, total),
                cell_values,
            )
    if grouping.users is not None and grouping.user_count >= 2:
        assert persons is not None
        n_user, rows_user = persons.n, persons.rows
        deff = design_effect_from_moments(
            *moments_from_sums(n_user, persons.total, _sum_by(users, k, squares))
        )
        if missing_count:  # a constant indicator has design effect 1
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
        persons=persons,
        segment_persons=segment_persons,
        pair_n=n,
        pair_total=total,
    )
