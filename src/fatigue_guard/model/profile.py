"""The reference profile: the training data's fingerprint that every live window is judged by.

Built once at training time from the rows (and out-of-sample scores and labels) the model was
validated on, stored as a JSON run artifact next to the model, and loaded by the monitor. It holds
only aggregates — bin edges and counts, moments, category counts, a score calibration map — so it
is a few hundred kilobytes whatever the training size, and carries no personal data.

Format 2 adds person-level aggregates: a person's rows are not independent draws, so the monitor
judges people, not rows, wherever a handful of people could move a distribution. Per feature: the
number, mean and variance of per-person means, and the central range of per-person *weekly*
means with the share of weeks outside it (a live window is a week: its per-person means are as
noisy as a weekly mean, not as a month's); per segment value, the same moments of its people's
means, missing shares and out-of-range shares. Format 1 profiles still load; the monitor then
falls back to row-level tests with design effects and skips the person-level signals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from fatigue_guard.contract.features import (
    FEATURE_NAMES,
    FEATURES,
    FEATURES_VERSION,
    INTEGER_FEATURES,
    SEGMENT_COLUMNS,
)
from fatigue_guard.model.stats import (
    bin_counts,
    design_effect,
    design_effect_from_moments,
    moments_from_sums,
)

PROFILE_FORMAT: Final[str] = "fatigue-guard/monitor-profile/2"
PROFILE_FORMAT_V1: Final[str] = "fatigue-guard/monitor-profile/1"
SUPPORTED_FORMATS: Final[tuple[str, ...]] = (PROFILE_FORMAT, PROFILE_FORMAT_V1)
# Run artifact path; training writes it, the monitor reads it back.
PROFILE_ARTIFACT: Final[str] = "reference/drift_profile.json"
# Fine bins (reference percentiles) for KS / Wasserstein; PSI groups them into deciles.
FINE_QUANTILES: Final[np.ndarray] = np.linspace(0.01, 0.99, 99)
PSI_BINS: Final[int] = 10
# Integer features with at most this many distinct values get one bin per value.
MAX_VALUE_BINS: Final[int] = 100
# Scores: quantiles kept to compute the reference alert rate at any threshold.
SCORE_QUANTILES: Final[np.ndarray] = np.linspace(0.0, 1.0, 1001)
CALIBRATION_GRID: Final[np.ndarray] = np.linspace(0.0, 1.0, 201)
# Segments: values seen fewer times than this are not profiled (no stable statistics).
MIN_PROFILED_SEGMENT_ROWS: Final[int] = 50
MAX_SEGMENT_VALUES: Final[int] = 50
# Person-level statistics: a person counts once they have half the values of a typical reference
# person-week (the median), in the reference as in a live window, so that both sides mean the
# same thing whether a device sends one row a day or ten. Without timestamps, this many.
PERSON_MIN_VALUES: Final[int] = 8
# Reference weeks: per-person means over blocks as long as the live window, so their spread
# matches that of a window's per-person means (a shorter mean is noisier).
PERSON_BLOCK_DAYS: Final[float] = 7.0
# The reference's per-person range: the central 80 % of weekly means. Wider ranges put only two
# or three reference people in each tail, and the share outside then rests on those few.
PERSON_TAIL: Final[float] = 0.1
PHYSIOLOGY_FEATURES: Final[tuple[str, ...]] = (
    "hrv_rmssd_ms",
    "sleep_efficiency",
    "resting_hr_bpm",
    "sleep_duration_h",
)


class ProfileError(ValueError):
    """A profile is missing, of an older format, or malformed."""


@dataclass(frozen=True)
class Binning:
    """A feature's reference binning: edges, counts per bin and each bin's PSI decile."""

    edges: np.ndarray
    counts: np.ndarray
    psi_group: np.ndarray

    def coarse(self, counts: np.ndarray) -> np.ndarray:
        """Sum fine-bin counts into the PSI bins."""
        return np.bincount(self.psi_group, weights=counts, minlength=PSI_BINS)


def _edges(present: np.ndarray, integer: bool) -> np.ndarray:
    if integer:
        distinct = np.unique(present)
        if len(distinct) <= MAX_VALUE_BINS:
            return distinct.astype(np.float64)
    return np.unique(np.quantile(present, FINE_QUANTILES)) if len(present) else np.zeros(0)


def _psi_groups(counts: np.ndarray) -> np.ndarray:
    # A bin's PSI decile is where its first reference row falls in the reference CDF, so each
    # decile holds about a tenth of the reference mass (ties keep a lumpy bin whole).
    total = max(counts.sum(), 1.0)
    before = (np.cumsum(counts) - counts) / total
    return np.minimum(np.floor(before * PSI_BINS + 1e-9), PSI_BINS - 1).astype(np.int64)


def _binning_dict(present: np.ndarray, integer: bool) -> dict[str, Any]:
    edges = _edges(present, integer)
    counts = bin_counts(present, edges)
    return {
        "edges": edges.tolist(),
        "counts": counts.astype(np.int64).tolist(),
        "psi_group": _psi_groups(counts).tolist(),
    }


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _moments(values: np.ndarray) -> dict[str, float | int | None]:
    present = values[~np.isnan(values)]
    n = len(present)
    return {
        "n": n,
        "mean": float(present.mean()) if n else None,
        "var": float(present.var(ddof=1)) if n > 1 else None,
    }


def _out_of_range(values: np.ndarray, name: str) -> np.ndarray:
    spec = next(f for f in FEATURES if f.name == name)
    with np.errstate(invalid="ignore"):
        upper = values >= spec.maximum if spec.maximum_exclusive else values > spec.maximum
        return (values < spec.minimum) | upper


@dataclass(frozen=True)
class _Pairs:
    """The reference rows grouped once by (person, reference week, segment cell).

    Every statistic of the profile is a sum over rows re-aggregated from these pairs: per person,
    per person-week, per segment value and per (person, segment value) cell. A feature then costs
    a few weighted ``bincount`` over the rows instead of one grouped pass per statistic.
    """

    codes: np.ndarray  # pair of each row
    rows: np.ndarray  # rows per pair (float64)
    person: np.ndarray | None  # person of each pair; None without user ids
    persons: int
    week: np.ndarray | None  # person-week of each pair (-1: a week too short to use)
    week_person: np.ndarray | None  # person of each person-week
    weeks: int
    segments: dict[str, tuple[np.ndarray, list[str]]]  # column -> (value of each pair, values)
    cells: dict[str, tuple[np.ndarray, np.ndarray]]  # column -> (cell of each pair, value of cell)
    min_values: int = PERSON_MIN_VALUES

    def by(self, index: np.ndarray, size: int, per_pair: np.ndarray) -> np.ndarray:
        """Per-pair sums re-aggregated by ``index`` (one entry per pair; -1 = left out)."""
        used = index >= 0
        return np.bincount(index[used], weights=per_pair[used], minlength=size)[:size]


def _weeks(frame: pd.DataFrame, person: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Reference week of each row, counted from the reference's first day; -1 for the last week
    when it covers less than half a week (reference weeks should be as long as a live window)."""
    if "measured_at" not in frame.columns:
        return None
    stamps = pd.to_datetime(frame["measured_at"], utc=True)
    days = ((stamps - stamps.min()) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    week = np.floor(days / PERSON_BLOCK_DAYS).astype(np.int64)
    last = int(week.max())
    if float(days.max()) - last * PERSON_BLOCK_DAYS < PERSON_BLOCK_DAYS / 2 and last > 0:
        week = np.where(week == last, -1, week)
    return week, last + 1


def _pairs(frame: pd.DataFrame) -> _Pairs:
    n = len(frame)
    segments: dict[str, tuple[np.ndarray, list[str]]] = {}
    key = np.zeros(n, dtype=np.int64)
    for column in SEGMENT_COLUMNS:
        if column in frame.columns:
            codes, uniques = pd.factorize(frame[column].astype("string").fillna("(none)"))
            segments[column] = (codes.astype(np.int64), [str(u) for u in uniques])
            key = key * max(len(uniques), 1) + codes
            key = pd.factorize(key)[0].astype(np.int64)  # dense: no overflow however many
    person = None
    persons = 0
    weeks = None
    if "user_id" in frame.columns and n:
        codes, uniques = pd.factorize(frame["user_id"], use_na_sentinel=False)
        person, persons = codes.astype(np.int64), len(uniques)
        weeks = _weeks(frame, person)
        week_key = weeks[0] if weeks is not None else np.zeros(n, dtype=np.int64)
        span = weeks[1] + 1 if weeks is not None else 1
        # Week -1 (too short) becomes its own slot, span - 1, so its rows still count per person.
        week_slot = np.where(week_key >= 0, week_key, span - 1)
        key = (person * span + week_slot) * (int(key.max()) + 1 if n else 1) + key
    codes, uniques = pd.factorize(key)
    pairs = len(uniques)
    first = np.empty(pairs, dtype=np.intp)
    first[codes] = np.arange(n)
    rows = np.bincount(codes, minlength=pairs).astype(np.float64)
    pair_segments = {c: (v[first], values) for c, (v, values) in segments.items()}
    out_person = person[first] if person is not None else None
    week = week_person = None
    n_weeks, minimum = 0, PERSON_MIN_VALUES
    cells: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if out_person is not None:
        for column, (v, values) in pair_segments.items():
            cell, cell_keys = pd.factorize(out_person * max(len(values), 1) + v)
            cells[column] = (cell, (np.asarray(cell_keys) % max(len(values), 1)).astype(np.int64))
        if weeks is not None:
            raw = weeks[0][first]
            week_key = np.where(raw >= 0, out_person * weeks[1] + raw, -1)
            dense, keys = pd.factorize(week_key)
            valid = np.asarray(keys) >= 0
            renumber = np.cumsum(valid) - 1
            week = np.where(valid[dense], renumber[dense], -1)
            week_person = (np.asarray(keys)[valid] // weeks[1]).astype(np.int64)
            n_weeks = int(valid.sum())
            used = week >= 0
            rows_per_week = np.bincount(week[used], weights=rows[used], minlength=n_weeks)
            if n_weeks:
                minimum = max(2, math.ceil(float(np.median(rows_per_week)) / 2))
    return _Pairs(
        codes=codes,
        rows=rows,
        person=out_person,
        persons=persons,
        week=week,
        week_person=week_person,
        weeks=n_weeks,
        segments=pair_segments,
        cells=cells,
        min_values=minimum,
    )


@dataclass(frozen=True)
class _Sums:
    """One column's per-pair sums: present values, their sum and sum of squares, out-of-range."""

    n: np.ndarray
    total: np.ndarray
    squares: np.ndarray
    bad: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, pairs: _Pairs, bad: np.ndarray | None = None) -> _Sums:
        present = ~np.isnan(values)
        v = np.where(present, values, 0.0)
        size = len(pairs.rows)
        count = lambda w: np.bincount(pairs.codes, weights=w, minlength=size)  # noqa: E731
        return cls(
            n=count(present),
            total=count(v),
            squares=count(v * v),
            bad=count(bad) if bad is not None and bad.any() else np.zeros(size),
        )


def _moments_of(n: float, total: float, squares: float) -> dict[str, float | int | None]:
    _, mean, var = moments_from_sums(np.array([n]), np.array([total]), np.array([squares]))
    return {
        "n": int(n),
        "mean": float(mean[0]) if n else None,
        "var": float(var[0]) if n > 1 else None,
    }


def _deff(pairs: _Pairs, n: np.ndarray, total: np.ndarray, squares: np.ndarray) -> float:
    """Design effect by person of a column with these per-pair sums (1 without user ids)."""
    if pairs.person is None or pairs.persons < 2:
        return 1.0
    k = pairs.persons
    return design_effect_from_moments(
        *moments_from_sums(
            pairs.by(pairs.person, k, n),
            pairs.by(pairs.person, k, total),
            pairs.by(pairs.person, k, squares),
        )
    )


def _feature_profile(values: np.ndarray, name: str, sums: _Sums, pairs: _Pairs) -> dict[str, Any]:
    integer = name in INTEGER_FEATURES
    rows = float(pairs.rows.sum())
    missed = pairs.rows - sums.n  # an indicator's sum and sum of squares alike
    return {
        "kind": "count" if integer else "continuous",
        "rows": len(values),
        # Effective sample size = n / deff (rows of one user are correlated); see stats.
        "deff": _deff(pairs, sums.n, sums.total, sums.squares),
        "missing_deff": _deff(pairs, pairs.rows, missed, missed),
        "missing_share": float(missed.sum() / rows) if rows else 0.0,
        "out_of_range_share": float(sums.bad.sum() / rows) if rows else 0.0,
        "out_of_range_deff": _deff(pairs, pairs.rows, sums.bad, sums.bad),
        **_moments_of(sums.n.sum(), sums.total.sum(), sums.squares.sum()),
        **_binning_dict(values[~np.isnan(values)], integer),
    }


def _spread(values: np.ndarray) -> dict[str, float | int | None]:
    """Count, mean and variance (ddof 1) of per-person values."""
    k = len(values)
    return {
        "k": k,
        "mean": float(values.mean()) if k else None,
        "var": float(values.var(ddof=1)) if k > 1 else None,
    }


def _person_profile(sums: _Sums, pairs: _Pairs) -> dict[str, Any]:
    """Per-person means of one feature: their moments, and the reference weeks' range."""
    assert pairs.person is not None
    n = pairs.by(pairs.person, pairs.persons, sums.n)
    total = pairs.by(pairs.person, pairs.persons, sums.total)
    keep = n >= pairs.min_values
    out: dict[str, Any] = {"min_values": pairs.min_values, **_spread(total[keep] / n[keep])}
    if pairs.week is None or pairs.week_person is None or not pairs.weeks:
        return out
    n = pairs.by(pairs.week, pairs.weeks, sums.n)
    total = pairs.by(pairs.week, pairs.weeks, sums.total)
    keep = n >= pairs.min_values
    weekly, owner = total[keep] / n[keep], pairs.week_person[keep]
    if len(weekly) < 2:
        return out
    lo, hi = np.quantile(weekly, [PERSON_TAIL, 1 - PERSON_TAIL])
    out["block_days"] = PERSON_BLOCK_DAYS
    out["blocks"] = len(weekly)
    out["range"] = [float(lo), float(hi)]
    for side, outside in (("below", weekly < lo), ("above", weekly > hi)):
        # A person's weeks fall on the same side: the effective number of independent weeks
        # behind the share is the number of weeks over their design effect.
        deff = design_effect(owner, outside.astype(np.float64), pairs.persons)
        out[side] = float(outside.mean())
        out[f"{side}_n_eff"] = float(len(weekly) / deff)
    return out


def _segment_people(sums: _Sums, pairs: _Pairs, column: str, code: int) -> dict[str, Any]:
    """Per-person moments of one feature within one segment value: means of the present values,
    missing shares and out-of-range shares of the person's rows there."""
    cell, cell_value = pairs.cells[column]
    size = len(cell_value)
    mine = cell_value == code
    n, total = pairs.by(cell, size, sums.n)[mine], pairs.by(cell, size, sums.total)[mine]
    rows, bad = pairs.by(cell, size, pairs.rows)[mine], pairs.by(cell, size, sums.bad)[mine]
    valued, enough = n >= pairs.min_values, rows >= pairs.min_values
    return {
        "values": _spread(total[valued] / n[valued]),
        "missing": _spread(((rows - n) / rows)[enough]),
        "out_of_range": _spread((bad / rows)[enough]),
    }


def _segment_profile(sums: dict[str, _Sums], pairs: _Pairs) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, (value_of_pair, uniques) in pairs.segments.items():
        size = len(uniques)
        counts = pairs.by(value_of_pair, size, pairs.rows)
        people = (
            np.bincount(pairs.cells[column][1], minlength=size) if column in pairs.cells else None
        )
        by_value = {
            name: tuple(pairs.by(value_of_pair, size, a) for a in (s.n, s.total, s.squares, s.bad))
            for name, s in sums.items()
        }
        values: dict[str, Any] = {}
        for code in np.argsort(-counts, kind="stable")[:MAX_SEGMENT_VALUES]:
            rows = float(counts[code])
            if rows < MIN_PROFILED_SEGMENT_ROWS:
                continue
            features: dict[str, Any] = {}
            for name, (n, total, squares, bad) in by_value.items():
                features[name] = {
                    **_moments_of(n[code], total[code], squares[code]),
                    "missing_share": float((rows - n[code]) / rows),
                    "out_of_range_share": float(bad[code] / rows),
                }
                if people is not None:
                    features[name]["persons"] = _segment_people(sums[name], pairs, column, code)
            entry: dict[str, Any] = {"rows": int(rows), "features": features}
            if people is not None:
                entry["people"] = int(people[code])
            values[uniques[code]] = entry
        out[column] = values
    return out


def _calibration(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    # Isotonic regression: monotone, no parametric shape assumed; stored on a fixed grid so the
    # map is small and applied with np.interp.
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(scores, labels.astype(np.float64))
    return {"x": CALIBRATION_GRID.tolist(), "y": iso.predict(CALIBRATION_GRID).tolist()}


def build_reference_profile(
    frame: pd.DataFrame,
    scores: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """The JSON-able reference profile of ``frame`` (contract-format rows).

    ``scores`` are the model's out-of-sample probabilities for those rows (hold-out or
    out-of-fold: in-sample forest scores are over-confident and would make live scores look
    drifted); ``labels`` their ``fatigue_event`` labels, used for the calibration map behind the
    label-free performance estimate. Both are optional but must match ``frame``'s length.
    """
    n = len(frame)
    for name, array in (("scores", scores), ("labels", labels)):
        if array is not None and len(array) != n:
            raise ValueError(f"{name} has {len(array)} values for {n} rows")
    pairs = _pairs(frame)
    columns = {name: _column(frame, name) for name in FEATURE_NAMES}
    sums = {
        name: _Sums.of(values, pairs, _out_of_range(values, name))
        for name, values in columns.items()
    }
    features = {
        name: _feature_profile(columns[name], name, sums[name], pairs) for name in FEATURE_NAMES
    }
    if pairs.person is not None:
        for name in FEATURE_NAMES:
            features[name]["persons"] = _person_profile(sums[name], pairs)
    has_people = pairs.person is not None
    profile: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "features_version": FEATURES_VERSION,
        "rows": n,
        "people": pairs.persons if has_people else None,
        "person_min_values": pairs.min_values if has_people else None,
        "features": features,
        "segments": _segment_profile(sums, pairs),
    }
    if scores is not None and n:
        s = np.asarray(scores, dtype=np.float64)
        score_sums = _Sums.of(s, pairs)
        profile["scores"] = {
            **_moments(s),
            "deff": _deff(pairs, score_sums.n, score_sums.total, score_sums.squares),
            **_binning_dict(s[~np.isnan(s)], integer=False),
            "quantiles": np.quantile(s, SCORE_QUANTILES).tolist(),
        }
    if labels is not None and n:
        y = np.asarray(labels, dtype=bool)
        profile["labels"] = {"n": n, "positive_rate": float(y.mean())}
        if scores is not None:
            profile["calibration"] = _calibration(np.asarray(scores, dtype=np.float64), y)
    return profile


@dataclass(frozen=True)
class ReferenceProfile:
    """A loaded profile with numpy views of what the signals need."""

    data: Mapping[str, Any]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        if data.get("format") not in SUPPORTED_FORMATS:
            raise ProfileError(
                f"reference profile format {data.get('format')!r} is not one of "
                f"{', '.join(SUPPORTED_FORMATS)}; retrain the model"
            )
        missing = [name for name in FEATURE_NAMES if name not in data.get("features", {})]
        if missing:
            raise ProfileError(f"reference profile lacks features: {', '.join(missing)}")
        return cls(data)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        scores: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> ReferenceProfile:
        """Build and wrap in one step (tests, offline analysis)."""
        return cls.from_dict(build_reference_profile(frame, scores, labels))

    def to_json(self) -> str:
        return json.dumps(self.data)

    @property
    def rows(self) -> int:
        return int(self.data["rows"])

    def feature(self, name: str) -> Mapping[str, Any]:
        return self.data["features"][name]

    def binning(self, name: str) -> Binning:
        return _binning(self.feature(name))

    @property
    def score_binning(self) -> Binning | None:
        scores = self.data.get("scores")
        return _binning(scores) if scores else None

    @property
    def scores(self) -> Mapping[str, Any] | None:
        return self.data.get("scores")

    def alert_rate(self, threshold: float) -> float | None:
        """Share of reference scores at or above ``threshold`` (from the stored quantiles)."""
        scores = self.scores
        if not scores:
            return None
        quantiles = np.asarray(scores["quantiles"])
        # Largest quantile level whose score is below the threshold.
        below = np.searchsorted(quantiles, threshold, side="left")
        return float(1.0 - SCORE_QUANTILES[max(below - 1, 0)]) if below else 1.0

    def calibrate(self, scores: np.ndarray) -> np.ndarray | None:
        """Calibrated probabilities for ``scores``, or ``None`` without a calibration map."""
        cal = self.data.get("calibration")
        if not cal:
            return None
        return np.interp(scores, np.asarray(cal["x"]), np.asarray(cal["y"]))

    def segment(self, column: str, value: str) -> Mapping[str, Any] | None:
        return self.data.get("segments", {}).get(column, {}).get(value)

    @property
    def has_persons(self) -> bool:
        """Whether the profile carries person-level statistics (format 2 built with user ids);
        without them the monitor judges rows with design effects."""
        return self.data.get("format") == PROFILE_FORMAT and self.data.get("people") is not None

    @property
    def person_min_values(self) -> int:
        """Values a person needs before their mean counts (see ``PERSON_MIN_VALUES``)."""
        return int(self.data.get("person_min_values") or PERSON_MIN_VALUES)

    def persons(self, name: str) -> Mapping[str, Any] | None:
        """Per-person statistics of a feature (see :func:`_person_profile`), or ``None``."""
        return self.feature(name).get("persons") if self.has_persons else None

    def segment_persons(self, column: str, value: str, name: str) -> Mapping[str, Any] | None:
        """Per-person statistics of a feature within a segment value, or ``None``."""
        if not self.has_persons:
            return None
        seg = self.segment(column, value)
        return None if seg is None else seg["features"][name].get("persons")

    @property
    def positive_rate(self) -> float | None:
        labels = self.data.get("labels")
        return float(labels["positive_rate"]) if labels else None


def _binning(doc: Mapping[str, Any]) -> Binning:
    return Binning(
        edges=np.asarray(doc["edges"], dtype=np.float64),
        counts=np.asarray(doc["counts"], dtype=np.float64),
        psi_group=np.asarray(doc["psi_group"], dtype=np.int64),
    )


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN/inf: report them as null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
