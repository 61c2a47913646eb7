"""Drift signals of a live window against the reference profile.

Per feature: PSI on the reference's decile bins, KS distance and normalised Wasserstein on its
percentile bins (continuous) or a chi-squared test (counts), the missing share and the
out-of-range share. Population physiology: four means with intervals against a tolerance.
Prediction drift: the score distribution and the alert rate. Each signal carries an effect size
and a p-value; :mod:`fatigue_guard.monitoring.decision` flags it only when the effect passes its
threshold *and* the test survives Benjamini-Hochberg across every test of the run *and* the
window has the minimum number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.model.profile import PHYSIOLOGY_FEATURES, Binning, ReferenceProfile
from fatigue_guard.model.stats import (
    bin_counts,
    binned_ks,
    binned_wasserstein,
    chi2_pvalue,
    ks_pvalue,
    mean_difference_interval,
    minimum_effect_pvalue,
    psi,
    two_proportion_pvalue,
)
from fatigue_guard.monitoring.window import SCORE_COLUMN, Window


def _r(value: float | None, digits: int = 5) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


@dataclass
class DistributionDrift:
    """One column (a feature or the score) against its reference binning."""

    name: str
    kind: str  # "continuous" | "count"
    n_reference: int
    n_current: int
    psi: float
    ks: float
    wasserstein: float  # normalised by the reference standard deviation
    p_value: float
    missing_reference: float = 0.0
    missing_current: float = 0.0
    missing_p_value: float = 1.0
    out_of_range_reference: float = 0.0
    out_of_range_current: float = 0.0
    out_of_range_p_value: float = 1.0
    drifted: bool = False
    missing_drifted: bool = False
    range_drifted: bool = False
    test: str = "ks"
    # Design effects (rows per user that repeat themselves) behind the effective sample sizes.
    deff_reference: float = 1.0
    deff_current: float = 1.0
    missing_deff: float = 1.0  # of the missing indicator, reference and window averaged
    out_of_range_deff: float = 1.0
    # Named segment values (see segments.SegmentTest.as_dict), largest lift first.
    segments: list[dict[str, Any]] = field(default_factory=list)
    missing_segments: list[dict[str, Any]] = field(default_factory=list)
    range_segments: list[dict[str, Any]] = field(default_factory=list)
    scope: str | None = None  # "segment" | "population" once attributed
    # What fired: "population" (the pooled rows), "persons" (per-person means only) or
    # "segment" (only a segment's own test).
    detected_in: str = "population"
    # For the plots: the reference binning and the current fine-bin counts.
    binning: Binning | None = field(default=None, repr=False)
    current_counts: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "test": self.test,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "deff": [_r(self.deff_reference, 3), _r(self.deff_current, 3)],
            "psi": _r(self.psi),
            "ks": _r(self.ks),
            "wasserstein_norm": _r(self.wasserstein),
            "p_value": _r(self.p_value, 8),
            "missing_reference": _r(self.missing_reference),
            "missing_current": _r(self.missing_current),
            "missing_p_value": _r(self.missing_p_value, 8),
            "out_of_range_reference": _r(self.out_of_range_reference),
            "out_of_range_current": _r(self.out_of_range_current),
            "out_of_range_p_value": _r(self.out_of_range_p_value, 8),
            "drifted": self.drifted,
            "detected_in": self.detected_in,
            "missing_drifted": self.missing_drifted,
            "range_drifted": self.range_drifted,
        }
        if self.scope is not None:
            out["scope"] = self.scope
            out["segments"] = self.segments
        if self.missing_drifted:
            out["missing_segments"] = self.missing_segments
        if self.range_drifted:
            out["range_segments"] = self.range_segments
        if self.binning is not None and self.current_counts is not None:
            out["psi_bins"] = {
                "reference": np.round(_share(self.binning.coarse(self.binning.counts)), 5).tolist(),
                "current": np.round(_share(self.binning.coarse(self.current_counts)), 5).tolist(),
            }
        return out


def _share(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts


def distribution_drift(
    name: str,
    kind: str,
    values: np.ndarray,
    binning: Binning,
    reference_std: float | None,
    deff_reference: float = 1.0,
    deff_current: float = 1.0,
) -> DistributionDrift:
    """Distances and the test p-value of ``values`` against ``binning`` (no decision yet).

    The tests use effective sample sizes (rows / design effect); the distances do not need to.
    """
    counts = bin_counts(values, binning.edges)
    n_ref, n_cur = float(binning.counts.sum()), float(counts.sum())
    n_ref_eff, n_cur_eff = n_ref / deff_reference, n_cur / deff_current
    ks = binned_ks(binning.counts, counts)
    w = binned_wasserstein(binning.counts, counts, binning.edges)
    w_norm = w / reference_std if reference_std and reference_std > 0 else 0.0
    coarse_ref, coarse_cur = binning.coarse(binning.counts), binning.coarse(counts)
    if kind == "count":
        deff = (deff_reference + deff_current) / 2
        p_value, test = chi2_pvalue(coarse_ref, coarse_cur, deff), "chi2"
    else:
        p_value, test = ks_pvalue(ks, n_ref_eff, n_cur_eff), "ks"
    return DistributionDrift(
        name=name,
        kind=kind,
        test=test,
        n_reference=int(n_ref),
        n_current=int(n_cur),
        psi=psi(coarse_ref, coarse_cur) if n_cur else 0.0,
        ks=ks if n_cur else 0.0,
        wasserstein=w_norm if n_cur else 0.0,
        p_value=p_value if n_cur else 1.0,
        binning=binning,
        current_counts=counts,
        deff_reference=deff_reference,
        deff_current=deff_current,
    )


def feature_drifts(
    reference: ReferenceProfile, window: Window, bad: dict[str, np.ndarray] | None = None
) -> list[DistributionDrift]:
    """Every contract feature's distribution, missing-share and out-of-range statistics
    (undecided); ``bad`` holds the per-row out-of-range masks of the features that have any."""
    bad = bad or {}
    out = []
    for name in FEATURE_NAMES:
        ref = reference.feature(name)
        summary = window.summary(name)
        var = ref.get("var")
        drift = distribution_drift(
            name,
            ref["kind"],
            window.features[name],
            reference.binning(name),
            np.sqrt(var) if var else None,
            float(ref.get("deff", 1.0)),
            summary.deff,
        )
        rows_ref = float(ref["rows"]) / float(ref.get("missing_deff", 1.0))
        rows_cur = window.rows / summary.missing_deff
        missing_ref = float(ref["missing_share"])
        missing_cur = summary.missing / window.rows if window.rows else 0.0
        drift.missing_reference = missing_ref
        drift.missing_current = missing_cur
        drift.missing_p_value = two_proportion_pvalue(
            missing_cur * rows_cur, rows_cur, missing_ref * rows_ref, rows_ref
        )
        drift.missing_deff = (float(ref.get("missing_deff", 1.0)) + summary.missing_deff) / 2
        oor_ref = float(ref.get("out_of_range_share", 0.0))
        oor_deff_ref = float(ref.get("out_of_range_deff", 1.0))
        oor_cur, oor_deff_cur = 0.0, 1.0
        if name in bad and window.rows:
            oor_cur = float(bad[name].mean())
            oor_deff_cur = window.design_effect(bad[name].astype(np.float64))
        drift.out_of_range_reference, drift.out_of_range_current = oor_ref, oor_cur
        drift.out_of_range_deff = (oor_deff_ref + oor_deff_cur) / 2
        if oor_ref or oor_cur:
            n_ref, n_cur = float(ref["rows"]) / oor_deff_ref, window.rows / oor_deff_cur
            drift.out_of_range_p_value = two_proportion_pvalue(
                oor_cur * n_cur, n_cur, oor_ref * n_ref, n_ref
            )
        out.append(drift)
    return out


@dataclass
class PhysiologyShift:
    """A population mean against the reference, with its interval and tolerance."""

    name: str
    reference_mean: float | None
    current_mean: float | None
    difference: float | None
    lower: float | None
    upper: float | None
    # Intervals of each mean on its own (for the plot).
    reference_half_width: float | None
    current_half_width: float | None
    tolerance: float
    n_current: int
    flagged: bool
    # One-sided p-value that the difference exceeds the tolerance (decided with the run's tests).
    p_value: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reference_mean": _r(self.reference_mean),
            "current_mean": _r(self.current_mean),
            "difference": _r(self.difference),
            "interval": [_r(self.lower), _r(self.upper)],
            "reference_half_width": _r(self.reference_half_width),
            "current_half_width": _r(self.current_half_width),
            "tolerance": self.tolerance,
            "n_current": self.n_current,
            "p_value": _r(self.p_value, 8),
            "flagged": self.flagged,
        }


def physiology_tolerances(settings: Settings) -> dict[str, float]:
    return {
        "hrv_rmssd_ms": settings.monitor_tolerance_hrv_ms,
        "sleep_efficiency": settings.monitor_tolerance_sleep_efficiency,
        "resting_hr_bpm": settings.monitor_tolerance_resting_hr_bpm,
        "sleep_duration_h": settings.monitor_tolerance_sleep_duration_h,
    }


def physiology_shifts(
    reference: ReferenceProfile, window: Window, settings: Settings
) -> list[PhysiologyShift]:
    """Mean of each physiology feature vs the reference, with the interval of the difference and
    the p-value that it exceeds the tolerance (a real shift, not a tiny significant one). The
    decision flags it when that p-value survives the run's false-discovery control: a 95 %
    interval per feature and run, with no correction, would be beyond the tolerance by chance
    every few weeks of runs."""
    z = settings.monitor_confidence_z
    out = []
    for name, tolerance in physiology_tolerances(settings).items():
        assert name in PHYSIOLOGY_FEATURES
        ref = reference.feature(name)
        summary = window.summary(name)
        n = summary.n
        if n < 2 or ref.get("mean") is None or ref.get("var") is None:
            out.append(
                PhysiologyShift(
                    name, ref.get("mean"), None, None, None, None, None, None, tolerance, n, False
                )
            )
            continue
        assert summary.mean is not None and summary.var is not None
        mean, var = summary.mean, summary.var
        ref_mean, ref_var = float(ref["mean"]), float(ref["var"])
        # Effective sizes: a user's nights are correlated, so n rows are worth fewer people.
        ref_n = float(ref["n"]) / float(ref.get("deff", 1.0))
        n_eff = n / summary.deff
        diff, lower, upper = mean_difference_interval(mean, var, n_eff, ref_mean, ref_var, ref_n, z)
        se = float(np.sqrt(var / n_eff + ref_var / ref_n))
        out.append(
            PhysiologyShift(
                name=name,
                reference_mean=ref_mean,
                current_mean=mean,
                difference=diff,
                lower=lower,
                upper=upper,
                reference_half_width=z * float(np.sqrt(ref_var / ref_n)),
                current_half_width=z * float(np.sqrt(var / n_eff)),
                tolerance=tolerance,
                n_current=n,
                flagged=False,
                p_value=minimum_effect_pvalue(diff, se, tolerance),
            )
        )
    return out


@dataclass
class PredictionDrift:
    """The score distribution and the alert rate at the production threshold."""

    scores: DistributionDrift | None
    threshold: float | None
    alert_rate_reference: float | None
    alert_rate_current: float | None
    alert_rate_p_value: float
    alert_rate_drifted: bool = False

    @property
    def relative_change(self) -> float | None:
        if not self.alert_rate_reference or self.alert_rate_current is None:
            return None
        return self.alert_rate_current / self.alert_rate_reference - 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores.as_dict() if self.scores else None,
            "threshold": self.threshold,
            "alert_rate_reference": _r(self.alert_rate_reference),
            "alert_rate_current": _r(self.alert_rate_current),
            "alert_rate_relative_change": _r(self.relative_change),
            "alert_rate_p_value": _r(self.alert_rate_p_value, 8),
            "alert_rate_drifted": self.alert_rate_drifted,
        }


def prediction_drift(
    reference: ReferenceProfile, window: Window, threshold: float | None
) -> PredictionDrift:
    binning = reference.score_binning
    scores = None
    if binning is not None and window.scores is not None:
        ref_scores = reference.scores or {}
        var = ref_scores.get("var")
        scores = distribution_drift(
            "score",
            "continuous",
            window.scores,
            binning,
            np.sqrt(var) if var else None,
            float(ref_scores.get("deff", 1.0)),
            window.summary(SCORE_COLUMN).deff,
        )
    ref_rate = reference.alert_rate(threshold) if threshold is not None else None
    scored = window.scored_mask
    n_cur = float(scored.sum())
    cur_rate = None
    if window.alerts is not None and n_cur:
        cur_rate = float(window.alerts[scored].mean())
        n_cur /= window.design_effect(np.where(scored, window.alerts, np.nan))
    p_value = 1.0
    if ref_rate is not None and cur_rate is not None and reference.scores:
        n_ref = float(reference.scores["n"]) / float(reference.scores.get("deff", 1.0))
        p_value = two_proportion_pvalue(cur_rate * n_cur, n_cur, ref_rate * n_ref, n_ref)
    return PredictionDrift(scores, threshold, ref_rate, cur_rate, p_value)


def large(drift: DistributionDrift, s: Settings) -> bool:
    """Whether a distribution's effect sizes pass their thresholds."""
    # Counts are judged on PSI alone (Wasserstein on a 0-100,000 step count says little); the
    # continuous features on either effect size, each at a level where noise never reaches.
    if drift.psi >= s.monitor_psi_threshold:
        return True
    return drift.kind == "continuous" and drift.wasserstein >= s.monitor_wasserstein_threshold
