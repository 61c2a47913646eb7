"""The monitor's result: every signal, and the decision the retraining trigger acts on.

:class:`Decision` is the whole interface to the trigger: ``breach`` and human-readable
``reasons``. Everything else in :class:`MonitorReport` explains the decision (the JSON stored in
SQL and rendered as HTML).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fatigue_guard.monitoring.performance import Performance
from fatigue_guard.monitoring.persons import PersonShift
from fatigue_guard.monitoring.segments import SegmentQuality
from fatigue_guard.monitoring.signals import DistributionDrift, PhysiologyShift, PredictionDrift

REPORT_FORMAT = "fatigue-guard/monitor-report/1"


@dataclass
class Decision:
    """Whether the window breaches the model's operating envelope, and why.

    ``triggered`` says whether the retrain hook was called; ``suppressed`` why not when
    ``breach`` is true (cool-down, ``--no-trigger``, no hook).
    """

    breach: bool
    reasons: list[str]
    triggered: bool = False
    suppressed: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "breach": self.breach,
            "reasons": self.reasons,
            "triggered": self.triggered,
            "suppressed": self.suppressed,
        }


@dataclass
class MonitorReport:
    """One monitoring run over one window."""

    window_start: datetime
    window_end: datetime
    created_at: datetime
    model_name: str | None
    model_version: str | None
    threshold: float | None
    rows: int
    features: list[DistributionDrift]
    physiology: list[PhysiologyShift]
    prediction: PredictionDrift
    quality: list[SegmentQuality]
    performance: Performance
    decision: Decision
    features_version: int = 1
    persons: list[PersonShift] = field(default_factory=list)
    tests: int = 0  # size of the run's false-discovery family
    rejections: Mapping[str, int] | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    id: int | None = None
    html_key: str | None = None
    html: str | None = field(default=None, repr=False)

    @property
    def drifted_features(self) -> list[DistributionDrift]:
        return [f for f in self.features if f.drifted]

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "window": {"start": self.window_start.isoformat(), "end": self.window_end.isoformat()},
            "model": {
                "name": self.model_name,
                "version": self.model_version,
                "threshold": self.threshold,
            },
            "features_version": self.features_version,
            "rows": self.rows,
            "decision": self.decision.as_dict(),
            "features": [f.as_dict() for f in self.features],
            "physiology": [p.as_dict() for p in self.physiology],
            "persons": [p.as_dict() for p in self.persons],
            "tests": self.tests,
            "prediction": self.prediction.as_dict(),
            "performance": self.performance.as_dict(),
            "data_quality": {
                "segments": [q.as_dict() for q in self.quality],
                # API-side contract rejections per field (Prometheus counter
                # fg_contract_rejections_total); null when the caller did not pass them.
                "rejections": dict(self.rejections) if self.rejections is not None else None,
            },
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "html_key": self.html_key,
        }


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _where(segments: list[dict[str, Any]], share: bool = False) -> str:
    if not segments:
        return "population-wide"
    if share:
        return ", ".join(
            f"{s['column']}={s['value']} {s['current']:.3f} vs {s['reference']:.3f}"
            for s in segments
        )
    return ", ".join(f"{s['column']}={s['value']}" for s in segments)


def breach_reasons(
    features: list[DistributionDrift],
    physiology: list[PhysiologyShift],
    prediction: PredictionDrift,
    performance: Performance,
    persons: list[PersonShift] | None = None,
) -> list[str]:
    """One sentence per fired signal, most actionable first (performance, then drift)."""
    reasons: list[str] = []
    p = performance
    if p.precision_breach and p.precision_interval is not None:
        reasons.append(
            f"precision {_f(p.precision)} (95% CI {_f(p.precision_interval[0])}-"
            f"{_f(p.precision_interval[1])}, {p.labelled_alerts} labelled alerts) "
            f"below the floor {p.floor:.2f}"
        )
    if p.estimated_precision_breach:
        reasons.append(
            f"estimated precision {_f(p.estimated_precision)} (label-free) below the floor "
            f"{p.floor:.2f}"
        )
    if p.calibration_drift:
        reasons.append(
            f"calibration drift: labelled precision {_f(p.precision)} vs estimated "
            f"{_f(p.estimated_precision_labelled)}, event rate {_f(p.event_rate)} vs expected "
            f"{_f(p.expected_event_rate_labelled)} ({p.labels} labels)"
        )
    by_people = {p.name: p for p in persons or [] if p.flagged}
    for f in features:
        if f.drifted and (f.detected_in != "persons" or f.segments):
            reasons.append(
                f"feature drift: {f.name} (PSI {f.psi:.3f}, Wasserstein {f.wasserstein:.2f} sd, "
                f"{f.test} p={f.p_value:.1e}; {_where(f.segments)})"
            )
        if f.name in by_people:
            reasons.append(by_people[f.name].describe())
        if f.missing_drifted:
            reasons.append(
                f"missing share: {f.name} {f.missing_current:.3f} vs {f.missing_reference:.3f} "
                f"({_where(f.missing_segments, share=True)})"
            )
        if f.range_drifted:
            reasons.append(
                f"out of range: {f.name} {f.out_of_range_current:.3f} vs "
                f"{f.out_of_range_reference:.3f} ({_where(f.range_segments, share=True)})"
            )
    for ph in physiology:
        if ph.flagged:
            reasons.append(
                f"physiology: mean {ph.name} {_f(ph.current_mean)} vs {_f(ph.reference_mean)} "
                f"(difference CI {_f(ph.lower)} to {_f(ph.upper)}, tolerance {ph.tolerance:g})"
            )
    if prediction.scores is not None and prediction.scores.drifted:
        sc = prediction.scores
        reasons.append(f"score drift (PSI {sc.psi:.3f}, Wasserstein {sc.wasserstein:.2f} sd)")
    if prediction.alert_rate_drifted:
        reasons.append(
            f"alert rate {_f(prediction.alert_rate_current)} vs "
            f"{_f(prediction.alert_rate_reference)} at threshold {prediction.threshold}"
        )
    return reasons
