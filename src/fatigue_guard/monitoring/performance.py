"""Live performance: labelled precision/recall with Wilson intervals, and a label-free estimate.

Labels arrive late and for a fraction of predictions. The estimate uses the reference
calibration map (isotonic, fitted on the training hold-out): with calibrated probabilities p_i,
the expected precision at the threshold is the mean p over alerted rows and the expected recall
is sum(p over alerts) / sum(p) (confidence-based performance estimation). It sees drops caused by
*feature* drift before any label exists; it cannot see a change in P(fatigue | features)
(concept or label shift) — that shows up as disagreement between the labelled and estimated
figures on the same rows, which is tested here as calibration drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.model.stats import design_effect, normal_sf, wilson_interval
from fatigue_guard.monitoring.window import Window

_NS_PER_DAY = 86_400 * 10**9


def _r(value: float | None, digits: int = 5) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _calibration_pvalue(
    observed: float, expected: np.ndarray, deff: float = 1.0, reference_n: float = math.inf
) -> float:
    """Two-sided p-value that ``observed`` successes came from Bernoulli(``expected``) draws.

    The variance is inflated by the design effect of the users' repeated rows and by the
    calibration map's own error (it was fitted on about ``reference_n`` effective reference
    rows in this score range: few, at a high threshold).
    """
    n = len(expected)
    mean = float(expected.mean()) if n else 0.0
    variance = float(np.sum(expected * (1 - expected))) * max(deff, 1.0)
    variance += n * n * mean * (1 - mean) / reference_n
    if variance <= 0:
        return 1.0
    return 2 * normal_sf(abs(observed - expected.sum()) / math.sqrt(variance))


@dataclass
class Performance:
    """Labelled and estimated figures at the production threshold, and the trigger states."""

    threshold: float | None
    floor: float
    labels: int = 0
    labelled_alerts: int = 0
    precision: float | None = None
    precision_interval: tuple[float, float] | None = None
    recall: float | None = None
    recall_interval: tuple[float, float] | None = None
    event_rate: float | None = None
    estimated_precision: float | None = None
    estimated_recall: float | None = None
    expected_event_rate: float | None = None
    # Estimated figures on the labelled rows only: the like-for-like comparison.
    estimated_precision_labelled: float | None = None
    expected_event_rate_labelled: float | None = None
    precision_gap_p_value: float = 1.0
    event_rate_gap_p_value: float = 1.0
    precision_breach: bool = False
    estimated_precision_breach: bool = False
    calibration_drift: bool = False
    daily: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def interval(pair: tuple[float, float] | None) -> list[float | None] | None:
            return None if pair is None else [_r(pair[0]), _r(pair[1])]

        return {
            "threshold": self.threshold,
            "floor": self.floor,
            "labels": self.labels,
            "labelled_alerts": self.labelled_alerts,
            "precision": _r(self.precision),
            "precision_interval": interval(self.precision_interval),
            "recall": _r(self.recall),
            "recall_interval": interval(self.recall_interval),
            "event_rate": _r(self.event_rate),
            "estimated_precision": _r(self.estimated_precision),
            "estimated_recall": _r(self.estimated_recall),
            "expected_event_rate": _r(self.expected_event_rate),
            "agreement": {
                "estimated_precision_on_labelled": _r(self.estimated_precision_labelled),
                "precision_gap": _r(_gap(self.precision, self.estimated_precision_labelled)),
                "precision_gap_p_value": _r(self.precision_gap_p_value, 8),
                "expected_event_rate_on_labelled": _r(self.expected_event_rate_labelled),
                "event_rate_gap": _r(_gap(self.event_rate, self.expected_event_rate_labelled)),
                "event_rate_gap_p_value": _r(self.event_rate_gap_p_value, 8),
            },
            "precision_breach": self.precision_breach,
            "estimated_precision_breach": self.estimated_precision_breach,
            "calibration_drift": self.calibration_drift,
            "daily": self.daily,
        }


def _reference_alerts(reference: ReferenceProfile, threshold: float | None) -> float:
    """Effective number of labelled reference rows the calibration map has above the threshold."""
    rate = reference.alert_rate(threshold) if threshold is not None else None
    labels = reference.data.get("labels")
    if rate is None or not labels:
        return math.inf
    deff = float((reference.scores or {}).get("deff", 1.0))
    return max(rate * float(labels["n"]) / deff, 1.0)


def _deff(codes: np.ndarray | None, values: np.ndarray, users: int) -> float:
    return design_effect(codes, values, users)


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def performance(
    reference: ReferenceProfile,
    window: Window,
    threshold: float | None,
    floor: float,
    s: Settings,
) -> Performance:
    """Labelled and label-free performance of the window at ``threshold`` against ``floor``."""
    out = Performance(threshold=threshold, floor=floor)
    window = window.predictions_only()
    if window.alerts is None or not window.rows:
        return out
    alerts = window.alerts
    calibrated = reference.calibrate(window.scores) if window.scores is not None else None
    z = s.monitor_confidence_z
    if calibrated is not None:
        total = float(calibrated.sum())
        out.expected_event_rate = float(calibrated.mean())
        if alerts.any():
            out.estimated_precision = float(calibrated[alerts].mean())
            out.estimated_recall = float(calibrated[alerts].sum() / total) if total > 0 else None
        # Without labels, the estimate alone may call a breach, but only when it is clearly under
        # the floor on plenty of alerts (it is a model of the truth, not the truth).
        out.estimated_precision_breach = bool(
            out.estimated_precision is not None
            and int(alerts.sum()) >= s.monitor_min_labels
            and out.estimated_precision < floor - s.monitor_calibration_tolerance
        )
    if window.labels is None:
        return out
    labelled = ~np.isnan(window.labels)
    y = window.labels[labelled] == 1.0
    a = alerts[labelled]
    out.labels = int(labelled.sum())
    out.labelled_alerts = int(a.sum())
    if not out.labels:
        return out
    tp, positives = float((y & a).sum()), float(y.sum())
    out.event_rate = positives / out.labels
    users = window.user_codes[labelled] if window.user_codes is not None else None
    hit = (y & a).astype(np.float64)
    if out.labelled_alerts:
        out.precision = tp / out.labelled_alerts
        # Wilson on the effective number of alerts: one user's alerts are correlated.
        deff = _deff(users, np.where(a, hit, np.nan), window.users)
        n_eff = out.labelled_alerts / deff
        out.precision_interval = wilson_interval(out.precision * n_eff, n_eff, z)
    if positives:
        out.recall = tp / positives
        deff = _deff(users, np.where(y, hit, np.nan), window.users)
        n_eff = positives / deff
        out.recall_interval = wilson_interval(out.recall * n_eff, n_eff, z)
    # Trigger only when even the optimistic end of the interval is under the floor, and only on
    # enough labelled alerts that the interval means something.
    out.precision_breach = bool(
        out.precision_interval is not None
        and out.labelled_alerts >= s.monitor_min_labels
        and out.precision_interval[1] < floor
    )
    if calibrated is not None:
        p = calibrated[labelled]
        out.expected_event_rate_labelled = float(p.mean())
        residual = y - p
        out.event_rate_gap_p_value = _calibration_pvalue(
            positives, p, _deff(users, residual, window.users)
        )
        if out.labelled_alerts:
            out.estimated_precision_labelled = float(p[a].mean())
            out.precision_gap_p_value = _calibration_pvalue(
                tp,
                p[a],
                _deff(users, np.where(a, residual, np.nan), window.users),
                _reference_alerts(reference, threshold),
            )
        precision_gap = abs(_gap(out.precision, out.estimated_precision_labelled) or 0.0)
        expected = out.expected_event_rate_labelled
        rate_gap = abs(out.event_rate / expected - 1.0) if expected > 0 else 0.0
        tol, alpha = s.monitor_calibration_tolerance, s.monitor_fdr
        out.calibration_drift = bool(
            out.labels >= s.monitor_min_labels
            and (
                (
                    out.labelled_alerts >= s.monitor_min_labels
                    and precision_gap >= tol
                    and out.precision_gap_p_value < alpha
                )
                or (
                    rate_gap >= s.monitor_event_rate_tolerance
                    and out.event_rate_gap_p_value < alpha
                )
            )
        )
    out.daily = _daily(window, labelled, calibrated, z)
    return out


def _daily(
    window: Window, labelled: np.ndarray, calibrated: np.ndarray | None, z: float
) -> list[dict[str, Any]]:
    """Labelled (and estimated) precision per UTC day of the window, for the plot."""
    if window.measured_ns is None or window.alerts is None or window.labels is None:
        return []
    day = window.measured_ns // _NS_PER_DAY
    first = int(day.min())
    index = (day - first).astype(np.int64)
    days = int(index.max()) + 1
    alert_labelled = window.alerts & labelled
    hits = alert_labelled & (window.labels == 1.0)
    n = np.bincount(index, weights=alert_labelled, minlength=days)
    tp = np.bincount(index, weights=hits, minlength=days)
    est = None
    if calibrated is not None:
        est_sum = np.bincount(
            index, weights=np.where(window.alerts, calibrated, 0.0), minlength=days
        )
        est_n = np.bincount(index, weights=window.alerts, minlength=days)
        est = np.where(est_n > 0, est_sum / np.maximum(est_n, 1), np.nan)
    out = []
    for i in range(days):  # one entry per day: a handful, not per row
        lo, hi = wilson_interval(tp[i], n[i], z)
        out.append(
            {
                "day": str(np.datetime64((first + i) * _NS_PER_DAY, "ns").astype("datetime64[D]")),
                "labelled_alerts": int(n[i]),
                "precision": _r(tp[i] / n[i]) if n[i] else None,
                "interval": [_r(lo), _r(hi)] if n[i] else None,
                "estimated_precision": _r(float(est[i])) if est is not None else None,
            }
        )
    return out
