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
from fatigue_guard.model.stats import bin_counts, design_effect, grouped_moments

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


def _feature_profile(
    values: np.ndarray, name: str, users: tuple[np.ndarray, int] | None
) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    integer = name in INTEGER_FEATURES
    codes, groups = users if users is not None else (None, 0)
    return {
        "kind": "count" if integer else "continuous",
        "rows": len(values),
        # Effective sample size = n / deff (rows of one user are correlated); see stats.
        "deff": design_effect(codes, values, groups),
        "missing_deff": design_effect(codes, np.isnan(values).astype(np.float64), groups),
        "missing_share": float(np.isnan(values).mean()) if len(values) else 0.0,
        "out_of_range_share": float(_out_of_range(values, name).mean()) if len(values) else 0.0,
        "out_of_range_deff": design_effect(
            codes, _out_of_range(values, name).astype(np.float64), groups
        ),
        **_moments(values),
        **_binning_dict(present, integer),
    }


@dataclass(frozen=True)
class _People:
    """Row -> person codes, and row -> (person, reference week) codes where time is known."""

    codes: np.ndarray
    count: int
    weeks: np.ndarray | None  # person-week code of each row; -1 = a week too short to use
    week_person: np.ndarray | None  # person code of each person-week
    week_count: int
    min_values: int = PERSON_MIN_VALUES


def _people(frame: pd.DataFrame) -> _People | None:
    if "user_id" not in frame.columns or not len(frame):
        return None
    codes, uniques = pd.factorize(frame["user_id"], use_na_sentinel=False)
    codes = codes.astype(np.int64)
    if "measured_at" not in frame.columns:
        return _People(codes, len(uniques), None, None, 0)
    stamps = pd.to_datetime(frame["measured_at"], utc=True)
    days = ((stamps - stamps.min()) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    week = np.floor(days / PERSON_BLOCK_DAYS).astype(np.int64)
    # The last week may be cut short by the end of the reference: keep it only when it covers at
    # least half a week, so reference weeks are about as long as a live window.
    last = int(week.max())
    if float(days.max()) - last * PERSON_BLOCK_DAYS < PERSON_BLOCK_DAYS / 2 and last > 0:
        week = np.where(week == last, -1, week)
    key = np.where(week >= 0, codes * (last + 1) + week, -1)
    dense, uniques_key = pd.factorize(key)
    valid = uniques_key >= 0
    renumber = np.cumsum(valid) - 1
    weeks = np.where(valid[dense], renumber[dense], -1)
    week_person = (np.asarray(uniques_key)[valid] // (last + 1)).astype(np.int64)
    rows_per_week = np.bincount(weeks[weeks >= 0], minlength=int(valid.sum()))
    minimum = max(2, math.ceil(float(np.median(rows_per_week)) / 2)) if len(rows_per_week) else 2
    return _People(codes, len(uniques), weeks, week_person, int(valid.sum()), minimum)


def _spread(values: np.ndarray) -> dict[str, float | int | None]:
    """Count, mean and variance (ddof 1) of per-person values."""
    k = len(values)
    return {
        "k": k,
        "mean": float(values.mean()) if k else None,
        "var": float(values.var(ddof=1)) if k > 1 else None,
    }


def _person_means(codes: np.ndarray, values: np.ndarray, groups: int, minimum: int) -> np.ndarray:
    n, mean, _ = grouped_moments(codes, values, groups)
    return mean[n >= minimum]


def _person_profile(values: np.ndarray, people: _People) -> dict[str, Any]:
    """Per-person means of one feature: their moments, and the reference weeks' range."""
    out: dict[str, Any] = {
        "min_values": people.min_values,
        **_spread(_person_means(people.codes, values, people.count, people.min_values)),
    }
    if people.weeks is None or people.week_person is None or not people.week_count:
        return out
    used = people.weeks >= 0
    n, mean, _ = grouped_moments(people.weeks[used], values[used], people.week_count)
    keep = n >= people.min_values
    weekly, owner = mean[keep], people.week_person[keep]
    if len(weekly) < 2:
        return out
    lo, hi = np.quantile(weekly, [PERSON_TAIL, 1 - PERSON_TAIL])
    out["block_days"] = PERSON_BLOCK_DAYS
    out["blocks"] = len(weekly)
    out["range"] = [float(lo), float(hi)]
    for side, outside in (("below", weekly < lo), ("above", weekly > hi)):
        # A person's weeks fall on the same side: the effective number of independent weeks
        # behind the share is the number of weeks over their design effect.
        deff = design_effect(owner, outside.astype(np.float64), people.count)
        out[side] = float(outside.mean())
        out[f"{side}_n_eff"] = float(len(weekly) / deff)
    return out


def _segment_people(
    column_values: np.ndarray, in_segment: np.ndarray, people: _People, name: str
) -> dict[str, Any]:
    """Per-person moments of one feature within one segment value: means of the present values,
    missing shares and out-of-range shares of the person's rows there."""
    codes = people.codes[in_segment]
    values = column_values[in_segment]
    rows = np.bincount(codes, minlength=people.count)
    enough = rows >= people.min_values
    missing = np.bincount(codes, weights=np.isnan(values), minlength=people.count)
    bad = np.bincount(codes, weights=_out_of_range(values, name), minlength=people.count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "values": _spread(_person_means(codes, values, people.count, people.min_values)),
            "missing": _spread((missing / rows)[enough]),
            "out_of_range": _spread((bad / rows)[enough]),
        }


def _segment_profile(
    frame: pd.DataFrame, columns: dict[str, np.ndarray], people: _People | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for segment in SEGMENT_COLUMNS:
        if segment not in frame.columns:
            continue
        codes, uniques = pd.factorize(frame[segment].astype("string").fillna("(none)"))
        counts = np.bincount(codes, minlength=len(uniques))
        keep = np.argsort(-counts)[:MAX_SEGMENT_VALUES]
        values: dict[str, Any] = {}
        for code in keep:
            if counts[code] < MIN_PROFILED_SEGMENT_ROWS:
                continue
            mask = codes == code
            entry: dict[str, Any] = {
                "rows": int(counts[code]),
                "features": {
                    name: {
                        **_moments(col[mask]),
                        "missing_share": float(np.isnan(col[mask]).mean()),
                        "out_of_range_share": float(_out_of_range(col[mask], name).mean()),
                    }
                    for name, col in columns.items()
                },
            }
            if people is not None:
                entry["people"] = len(np.unique(people.codes[mask]))
                for name, col in columns.items():
                    entry["features"][name]["persons"] = _segment_people(col, mask, people, name)
            values[str(uniques[code])] = entry
        out[segment] = values
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
    columns = {name: _column(frame, name) for name in FEATURE_NAMES}
    people = _people(frame)
    users = (people.codes, people.count) if people is not None else None
    features = {name: _feature_profile(columns[name], name, users) for name in FEATURE_NAMES}
    if people is not None:
        for name in FEATURE_NAMES:
            features[name]["persons"] = _person_profile(columns[name], people)
    profile: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "features_version": FEATURES_VERSION,
        "rows": n,
        "people": people.count if people is not None else None,
        "person_min_values": people.min_values if people is not None else None,
        "features": features,
        "segments": _segment_profile(frame, columns, people),
    }
    if scores is not None and n:
        s = np.asarray(scores, dtype=np.float64)
        codes, groups = users if users is not None else (None, 0)
        profile["scores"] = {
            **_moments(s),
            "deff": design_effect(codes, s, groups),
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
