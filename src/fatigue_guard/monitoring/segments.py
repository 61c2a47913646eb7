"""Which segments carry a shift: feature values, missing shares and out-of-range shares.

A firmware bug on one device model moves the population a little and that model a lot; an app
release that stops sending a field raises the missing share of its own users only. For every
feature, every segment value (device_model, platform, app_version) is compared with its *own*
reference, three ways: the feature's values, its missing share and its out-of-range share.

People are the unit. A segment holds some tens of people, and a few people's habits move a
segment's rows by chance; so each test compares the window's per-person means (or per-person
shares) in the segment with the reference's people in that segment (Welch t on people). Every
test's p-value joins the run's Benjamini-Hochberg family (:func:`fatigue_guard.monitoring.signals.
decide`), and a segment value is **named** only when its test survives it, its shift reaches the
feature's clinical tolerance (values) or ``monitor_missing_tolerance`` (shares), and the shift is
at least ``monitor_segment_min_lift`` times the population's. A feature whose population did not
move enough is still flagged when one of its segments is named.

Profiles of format 1 (no person-level statistics) and windows without user ids fall back to
row-level tests with the population's design effects. Every per-segment statistic comes from the
window's column summaries (:mod:`fatigue_guard.monitoring.summary`): no further pass over rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_BY_NAME
from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.model.stats import normal_sf, two_proportion_pvalue, welch_pvalue
from fatigue_guard.monitoring.persons import PersonShift
from fatigue_guard.monitoring.signals import DistributionDrift
from fatigue_guard.monitoring.window import Window

VALUE, MISSING, OUT_OF_RANGE = "value", "missing", "out_of_range"


def _z_pvalue(diff: float, se: float) -> float:
    if se <= 0 or not math.isfinite(se):
        return 1.0 if diff == 0 else 0.0
    return 2 * normal_sf(abs(diff) / se)


def _r(value: float) -> float:
    return round(float(value), 5) if math.isfinite(value) else value


@dataclass
class SegmentTest:
    """One (feature, segment value) comparison with that segment's reference."""

    signal: str  # VALUE | MISSING | OUT_OF_RANGE
    feature: str
    column: str
    value: str
    code: int  # the value's code in the window's segment column
    unit: str  # "persons" (per-person means or shares) | "rows" (row level, design effects)
    n: int  # people (or rows) in the window's segment
    reference: float  # mean of per-person means / shares (or row mean / share)
    current: float
    p_value: float
    population_shift: float  # the same statistic's shift over the whole population
    tolerance: float
    named: bool = False

    @property
    def shift(self) -> float:
        return self.current - self.reference

    @property
    def lift(self) -> float:
        return abs(self.shift) / max(abs(self.population_shift), 1e-9)

    def large(self, s: Settings) -> bool:
        return abs(self.shift) >= self.tolerance and self.lift >= s.monitor_segment_min_lift

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "value": self.value,
            "signal": self.signal,
            "unit": self.unit,
            "n": self.n,
            "reference": _r(self.reference),
            "current": _r(self.current),
            "shift": _r(self.shift),
            "tolerance": self.tolerance,
            "lift": _r(min(self.lift, 1e6)),
            "p_value": round(self.p_value, 8),
        }


def out_of_range(values: np.ndarray, name: str) -> np.ndarray:
    spec = FEATURES_BY_NAME[name]
    with np.errstate(invalid="ignore"):
        upper = values >= spec.maximum if spec.maximum_exclusive else values > spec.maximum
        return (values < spec.minimum) | upper


def _may_be_out_of_range(values: np.ndarray, name: str) -> bool:
    spec = FEATURES_BY_NAME[name]
    if not len(values):
        return False
    # fmin / fmax skip NaN; an all-NaN column gives NaN, and NaN compares False: in range.
    low, high = float(np.fmin.reduce(values)), float(np.fmax.reduce(values))
    return bool(low < spec.minimum or high >= spec.maximum)


def out_of_range_rows(window: Window) -> dict[str, np.ndarray]:
    """Per-row out-of-range masks of the features that have any such row."""
    # Live data passed the API's contract check, so out-of-range values are rare: a column's
    # extremes (two fast reductions) rule most features out before any per-row mask.
    return {
        name: out_of_range(values, name)
        for name, values in window.features.items()
        if _may_be_out_of_range(values, name)
    }


def _spread(values: np.ndarray) -> tuple[int, float, float]:
    k = len(values)
    return (
        k,
        (float(values.mean()) if k else math.nan),
        (float(values.var(ddof=1)) if k > 1 else 0.0),
    )


def _welch(
    signal: str,
    feature: str,
    column: str,
    value: str,
    code: int,
    current: np.ndarray,
    ref: Mapping[str, Any],
    population_shift: float,
    tolerance: float,
) -> SegmentTest:
    k, mean, var = _spread(current)
    p, _ = welch_pvalue(mean, var, k, float(ref["mean"]), float(ref["var"] or 0.0), float(ref["k"]))
    return SegmentTest(
        signal, feature, column, value, code, "persons", k, float(ref["mean"]), mean, p,
        population_shift, tolerance,
    )  # fmt: skip


def segment_tests(
    features: list[DistributionDrift],
    persons: Mapping[str, PersonShift],
    reference: ReferenceProfile,
    window: Window,
    s: Settings,
    tolerances: Mapping[str, float],
    bad: Mapping[str, np.ndarray],
) -> list[SegmentTest]:
    """Every testable (feature, segment value) comparison, undecided.

    Testable: the segment value has ``monitor_min_segment_samples`` rows, a reference, enough
    people on both sides, and, for a share, some missing (out-of-range) value on either side.
    These filters look at the data's volume, never at its values' shift, so they do not bias the
    false-discovery control.
    """
    if window.rows < s.monitor_min_samples:
        return []
    by_name = {f.name: f for f in features}
    out: list[SegmentTest] = []
    for name in FEATURE_NAMES:
        drift = by_name[name]
        summary = window.summary(name)
        ref_all = reference.feature(name)
        person = persons.get(name)
        value_shift = person.difference if person is not None else None
        if value_shift is None and summary.mean is not None and ref_all.get("mean") is not None:
            value_shift = summary.mean - float(ref_all["mean"])
        missing_shift = drift.missing_current - drift.missing_reference
        range_shift = drift.out_of_range_current - drift.out_of_range_reference
        pair_bad = (
            np.bincount(window.grouping.codes, weights=bad[name], minlength=window.grouping.pairs)
            if name in bad
            else None
        )
        for column, segment in window.segments.items():
            rows = summary.segments[column].rows
            cells = (summary.segment_persons or {}).get(column)
            bad_cells = (
                window.grouping.cell_sums(column, pair_bad)
                if pair_bad is not None and cells is not None
                else None
            )
            for code, value in enumerate(segment.values):
                seg = reference.segment(column, value)
                if seg is None or rows[code] < s.monitor_min_segment_samples:
                    continue
                ref_people = reference.segment_persons(column, value, name)
                if ref_people is not None and cells is not None:
                    out.extend(
                        _person_tests(
                            name, column, value, code, cells, bad_cells, ref_people, s,
                            (value_shift, missing_shift, range_shift), tolerances[name],
                            reference.person_min_values,
                        )
                    )  # fmt: skip
                else:
                    out.extend(
                        _row_tests(
                            name, column, value, code, window, seg, drift, s,
                            (value_shift, missing_shift, range_shift), bad.get(name),
                        )
                    )  # fmt: skip
    return out


def _person_tests(
    name: str,
    column: str,
    value: str,
    code: int,
    cells: Any,
    bad_cells: np.ndarray | None,
    ref: Mapping[str, Any],
    s: Settings,
    shifts: tuple[float | None, float, float],
    tolerance: float,
    minimum: int,
) -> list[SegmentTest]:
    value_shift, missing_shift, range_shift = shifts
    mine = cells.value == code
    out = []
    enough_values = mine & (cells.n >= minimum)
    ref_values = ref["values"]
    if (
        value_shift is not None
        and enough_values.sum() >= s.monitor_min_segment_persons
        and ref_values["k"] >= s.monitor_min_segment_persons
        and ref_values["mean"] is not None
    ):
        means = cells.total[enough_values] / cells.n[enough_values]
        out.append(
            _welch(VALUE, name, column, value, code, means, ref_values, value_shift, tolerance)
        )
    enough_rows = mine & (cells.rows >= minimum)
    if enough_rows.sum() < s.monitor_min_segment_persons:
        return out
    rows = cells.rows[enough_rows]
    shares = {
        MISSING: (rows - cells.n[enough_rows]) / rows,
        OUT_OF_RANGE: (bad_cells[enough_rows] / rows) if bad_cells is not None else None,
    }
    for signal, shift in ((MISSING, missing_shift), (OUT_OF_RANGE, range_shift)):
        ref_share = ref[signal]
        current = shares[signal]
        if current is None:
            current = np.zeros(len(rows))
        if ref_share["k"] < s.monitor_min_segment_persons or ref_share["mean"] is None:
            continue
        if not current.any() and not ref_share["mean"]:
            continue  # nothing missing (out of range) on either side: nothing to test
        out.append(
            _welch(
                signal, name, column, value, code, current, ref_share, shift,
                s.monitor_missing_tolerance,
            )
        )  # fmt: skip
    return out


def _row_tests(
    name: str,
    column: str,
    value: str,
    code: int,
    window: Window,
    seg: Mapping[str, Any],
    drift: DistributionDrift,
    s: Settings,
    shifts: tuple[float | None, float, float],
    bad: np.ndarray | None,
) -> list[SegmentTest]:
    """Row-level fallback: the segment's moments and shares against its reference, with the
    population's design effects standing in for the segment's."""
    value_shift, missing_shift, range_shift = shifts
    moments = window.summary(name).segments[column]
    ref_f = seg["features"][name]
    n, rows, ref_rows = float(moments.n[code]), float(moments.rows[code]), float(seg["rows"])
    out = []
    if (
        value_shift is not None
        and n >= 2
        and ref_f.get("mean") is not None
        and ref_f.get("var")
        and ref_f["n"] >= 2
    ):
        ref_sd = math.sqrt(ref_f["var"])
        se = math.sqrt(
            moments.var[code] * drift.deff_current / n
            + ref_f["var"] * drift.deff_reference / ref_f["n"]
        )
        mean = float(moments.mean[code])
        out.append(
            SegmentTest(
                VALUE, name, column, value, code, "rows", int(n), float(ref_f["mean"]), mean,
                _z_pvalue(mean - float(ref_f["mean"]), se), value_shift,
                s.monitor_segment_shift_sd * ref_sd,
            )
        )  # fmt: skip
    missing = (rows - n) / rows if rows else 0.0
    bad_share = (
        float(np.bincount(window.segments[column].codes, weights=bad)[code] / rows)
        if bad is not None and rows
        else 0.0
    )
    for signal, current, ref_share, deff, shift in (
        (MISSING, missing, float(ref_f["missing_share"]), drift.missing_deff, missing_shift),
        (
            OUT_OF_RANGE, bad_share, float(ref_f.get("out_of_range_share", 0.0)),
            drift.out_of_range_deff, range_shift,
        ),
    ):  # fmt: skip
        if not current and not ref_share:
            continue
        n_cur, n_ref = rows / deff, ref_rows / deff
        p = two_proportion_pvalue(current * n_cur, n_cur, ref_share * n_ref, n_ref)
        out.append(
            SegmentTest(
                signal, name, column, value, code, "rows", int(rows), ref_share, current, p, shift,
                s.monitor_missing_tolerance,
            )
        )  # fmt: skip
    return out


def _residual(
    t: SegmentTest,
    without: SegmentTest,
    reference: ReferenceProfile,
    window: Window,
    bad: Mapping[str, np.ndarray],
) -> SegmentTest | None:
    """``t`` tested again on its people's rows outside ``without``'s segment value (``None``
    when no person keeps enough rows there)."""
    grouping = window.grouping
    summary = window.summary(t.feature)
    assert summary.pair_n is not None and summary.pair_total is not None
    outside = (grouping.segments[without.column] != without.code).astype(np.float64)
    cells, cell_values = grouping.person_cells[t.column]
    mine = cell_values == t.code

    def sums(per_pair: np.ndarray) -> np.ndarray:
        return np.bincount(cells, weights=per_pair * outside, minlength=len(cell_values))

    ref = reference.segment_persons(t.column, t.value, t.feature)
    assert ref is not None
    n, rows = sums(summary.pair_n), sums(grouping.rows)
    minimum = reference.person_min_values
    if t.signal == VALUE:
        keep = mine & (n >= minimum)
        current = sums(summary.pair_total)[keep] / n[keep]
    else:
        keep = mine & (rows >= minimum)
        if t.signal == MISSING:
            current = (rows[keep] - n[keep]) / rows[keep]
        else:
            pair_bad = np.bincount(grouping.codes, weights=bad[t.feature], minlength=grouping.pairs)
            current = sums(pair_bad)[keep] / rows[keep]
    if len(current) < 2:
        return None
    stats = ref["values"] if t.signal == VALUE else ref[t.signal]
    return _welch(
        t.signal, t.feature, t.column, t.value, t.code, current, stats, t.population_shift,
        t.tolerance,
    )  # fmt: skip


def explain_away(
    tests: list[SegmentTest],
    reference: ReferenceProfile,
    window: Window,
    s: Settings,
    bad: Mapping[str, np.ndarray],
    cutoff: float,
) -> None:
    """Un-name segment values whose shift is carried by a more specific named value.

    Segment columns overlap: when one app version stops sending a field, a device model whose
    users happen to run that version more often than others sees its missing share rise too. The
    value with the largest lift is kept; any other named value of another column is tested again
    on its people's rows outside the kept value and stays named only if that test still passes
    ``cutoff`` (the run's Benjamini-Hochberg critical value) and its effect sizes. Row-level
    tests (format 1 profiles) have no per-person sums to do this with.
    """
    groups: dict[tuple[str, str], list[SegmentTest]] = {}
    for t in tests:
        if t.named and t.unit == "persons":
            groups.setdefault((t.feature, t.signal), []).append(t)
    for hits in groups.values():
        hits.sort(key=lambda t: -t.lift)
        kept: list[SegmentTest] = []
        for t in hits:
            for k in kept:
                if k.column == t.column:
                    continue
                residual = _residual(t, k, reference, window, bad)
                if (
                    residual is None
                    or residual.n < s.monitor_min_segment_persons
                    or residual.p_value > cutoff
                    or not residual.large(s)
                ):
                    t.named = False
                    break
            if t.named:
                kept.append(t)


def named(tests: list[SegmentTest], feature: str, signal: str) -> list[dict[str, Any]]:
    """The named segment values of one feature and signal, largest lift first."""
    hits = [t for t in tests if t.named and t.feature == feature and t.signal == signal]
    hits.sort(key=lambda t: -t.lift)
    return [t.as_dict() for t in hits]


@dataclass
class SegmentQuality:
    """Missing and out-of-range shares of one segment value, and its named data-quality tests."""

    column: str
    value: str
    rows: int
    missing_share: float  # mean over features
    out_of_range_share: float  # rows with any out-of-range feature
    issues: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "value": self.value,
            "rows": self.rows,
            "missing_share": round(self.missing_share, 5),
            "out_of_range_share": round(self.out_of_range_share, 5),
            "issues": self.issues,
        }


def data_quality(
    window: Window, s: Settings, tests: list[SegmentTest], bad: Mapping[str, np.ndarray]
) -> list[SegmentQuality]:
    """Per segment value: missing and out-of-range shares, and the features whose missing or
    out-of-range share was named for that value (the same decisions as the breach reasons)."""
    if not window.rows:
        return []
    any_bad = np.logical_or.reduce(list(bad.values())) if bad else np.zeros(window.rows, bool)
    issues: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in tests:
        if t.named and t.signal != VALUE:
            issues.setdefault((t.column, t.value), []).append(
                {
                    "feature": t.feature,
                    "issue": t.signal,
                    "share": round(t.current, 5),
                    "reference": round(t.reference, 5),
                    "unit": t.unit,
                }
            )
    out: list[SegmentQuality] = []
    for column, segment in window.segments.items():
        groups = len(segment.values)
        rows = window.grouping.segment_rows(column)
        missing = sum(
            window.summary(name).segments[column].rows - window.summary(name).segments[column].n
            for name in FEATURE_NAMES
        )
        any_oor = np.bincount(segment.codes, weights=any_bad, minlength=groups)
        for code, value in enumerate(segment.values):
            n = rows[code]
            if n < s.monitor_min_segment_samples:
                continue
            out.append(
                SegmentQuality(
                    column=column,
                    value=value,
                    rows=int(n),
                    missing_share=float(missing[code] / len(FEATURE_NAMES) / n),
                    out_of_range_share=float(any_oor[code] / n),
                    issues=issues.get((column, value), []),
                )
            )
    return out
