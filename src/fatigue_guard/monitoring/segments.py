"""Which segments carry a shift, and data quality by segment.

A firmware bug on one device model moves the population mean a little and that model's mean a
lot. For each drifted feature, every segment value (device_model, platform, app_version) is
compared with its *own* reference; a value is named when its shift is significant, large in
reference standard deviations, and at least ``monitor_segment_min_lift`` times the population's
shift. When no value stands out, the drift is population-wide. Every per-segment statistic comes
from the window's column summaries (:mod:`fatigue_guard.monitoring.summary`): computed once per
column, read here by the screen, the attribution and data quality alike, with no pass over rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_BY_NAME
from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.model.stats import normal_sf
from fatigue_guard.monitoring.signals import DistributionDrift
from fatigue_guard.monitoring.window import Window


def _z_pvalue(diff: float, se: float) -> float:
    if se <= 0 or not math.isfinite(se):
        return 1.0
    return 2 * normal_sf(abs(diff) / se)


def _segment_shifts(
    name: str, reference: ReferenceProfile, window: Window, s: Settings, deffs: tuple[float, float]
) -> tuple[float, list[dict[str, Any]]]:
    """Population shift of ``name`` (reference sd units) and each segment value's own shift
    against that segment's reference, with a design-effect-corrected p-value."""
    summary = window.summary(name)
    ref_all = reference.feature(name)
    if ref_all.get("mean") is None or not ref_all.get("var") or summary.mean is None:
        return 0.0, []
    population_shift = float((summary.mean - ref_all["mean"]) / math.sqrt(ref_all["var"]))
    deff_cur, deff_ref = deffs
    candidates: list[dict[str, Any]] = []
    for column, segment in window.segments.items():
        moments = summary.segments[column]
        n, mean, var = moments.n, moments.mean, moments.var
        for code, value in enumerate(segment.values):
            ref = reference.segment(column, value)
            if ref is None or n[code] < s.monitor_min_segment_samples:
                continue
            ref_f = ref["features"][name]
            if ref_f.get("mean") is None or not ref_f.get("var") or ref_f["n"] < 2:
                continue
            ref_sd = math.sqrt(ref_f["var"])
            shift = float((mean[code] - ref_f["mean"]) / ref_sd)
            se = (
                math.sqrt(var[code] * deff_cur / n[code] + ref_f["var"] * deff_ref / ref_f["n"])
                / ref_sd
            )
            candidates.append(
                {
                    "column": column,
                    "value": value,
                    "n": int(n[code]),
                    "weight": float(n[code] / summary.n),
                    "shift_sd": shift,
                    "p_value": _z_pvalue(shift, se),
                    "lift": float(abs(shift) / max(abs(population_shift), 1e-9)),
                }
            )
    return population_shift, candidates


def _rounded(c: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in c.items()}


def segment_screen(
    features: list[DistributionDrift], reference: ReferenceProfile, window: Window, s: Settings
) -> None:
    """Flag features that did not drift in the population but did within a segment.

    A firmware bug on a device model with a fifth of the users is diluted five-fold in the
    population; tested against its own reference it is plain. Every (feature, segment value)
    is a test: Bonferroni across all of them, and the shift must reach
    ``monitor_segment_shift_sd`` reference standard deviations.
    """
    if window.rows < s.monitor_min_samples:
        return
    pending = [
        (f, _segment_shifts(f.name, reference, window, s, (f.deff_current, f.deff_reference)))
        for f in features
        if not f.drifted
    ]
    tests = sum(len(c) for _, (_, c) in pending)
    alpha = s.monitor_fdr / max(tests, 1)
    for drift, (_, candidates) in pending:
        hits = [
            c
            for c in candidates
            if c["p_value"] < alpha and abs(c["shift_sd"]) >= s.monitor_segment_shift_sd
        ]
        if hits:
            drift.drifted = True
            drift.detected_in = "segment"


def attribute(
    drift: DistributionDrift, reference: ReferenceProfile, window: Window, s: Settings
) -> None:
    """Fill ``drift.segments`` (named values, largest lift first) and ``drift.scope``."""
    _, candidates = _segment_shifts(
        drift.name, reference, window, s, (drift.deff_current, drift.deff_reference)
    )
    # Bonferroni over the segment tests of this feature: few tests, and naming a wrong segment
    # sends people to the wrong team, so err on the conservative side.
    alpha = s.monitor_fdr / max(len(candidates), 1)
    named = [
        _rounded(c)
        for c in candidates
        if c["p_value"] < alpha
        and abs(c["shift_sd"]) >= s.monitor_wasserstein_threshold
        and c["lift"] >= s.monitor_segment_min_lift
    ]
    named.sort(key=lambda c: -c["lift"])
    drift.segments = named
    drift.scope = "segment" if named else "population"


@dataclass
class SegmentQuality:
    """Missing and out-of-range shares of one segment value."""

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


def _out_of_range(values: np.ndarray, name: str) -> np.ndarray:
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


def data_quality(reference: ReferenceProfile, window: Window, s: Settings) -> list[SegmentQuality]:
    """Per segment value: missing / out-of-range shares, and the features whose missing share
    rose past ``monitor_missing_tolerance`` against that segment's reference (or whose values
    are out of the contract's range in that share of rows)."""
    if not window.rows:
        return []
    # Live data passed the API's contract check, so out-of-range values are rare: a column's
    # extremes (two fast reductions) rule most features out before any per-row mask.
    bad = {
        name: _out_of_range(values, name)
        for name, values in window.features.items()
        if _may_be_out_of_range(values, name)
    }
    any_bad = np.logical_or.reduce(list(bad.values())) if bad else np.zeros(window.rows, bool)
    out: list[SegmentQuality] = []
    for column, segment in window.segments.items():
        groups = len(segment.values)
        rows = window.grouping.segment_rows(column)
        zeros = np.zeros(groups)
        moments = {name: window.summary(name).segments[column] for name in FEATURE_NAMES}
        miss = {name: m.rows - m.n for name, m in moments.items()}
        oor = {n: np.bincount(segment.codes, weights=b, minlength=groups) for n, b in bad.items()}
        oor = {n: oor.get(n, zeros) for n in FEATURE_NAMES}
        any_oor = np.bincount(segment.codes, weights=any_bad, minlength=groups)
        tests = groups * len(FEATURE_NAMES)
        for code, value in enumerate(segment.values):
            n = rows[code]
            if n < s.monitor_min_segment_samples:
                continue
            ref = reference.segment(column, value)
            issues = []
            for name in FEATURE_NAMES:
                share = miss[name][code] / n
                oor_share = oor[name][code] / n
                if oor_share >= s.monitor_missing_tolerance:
                    issues.append({"feature": name, "issue": "out_of_range", "share": oor_share})
                if ref is None:
                    continue
                ref_share = float(ref["features"][name]["missing_share"])
                ref_n = float(ref["rows"])
                se = math.sqrt(
                    max(share * (1 - share) / n + ref_share * (1 - ref_share) / ref_n, 1e-12)
                )
                rise = share - ref_share
                if (
                    rise >= s.monitor_missing_tolerance
                    and _z_pvalue(rise, se) < s.monitor_fdr / tests
                ):
                    issues.append(
                        {
                            "feature": name,
                            "issue": "missing",
                            "share": round(share, 5),
                            "reference": round(ref_share, 5),
                        }
                    )
            out.append(
                SegmentQuality(
                    column=column,
                    value=value,
                    rows=int(n),
                    missing_share=float(np.mean([miss[m][code] for m in FEATURE_NAMES]) / n),
                    out_of_range_share=float(any_oor[code] / n),
                    issues=issues,
                )
            )
    return out
