"""What the monitor's report names, in one line, and whether it names what the scenario changed.

The scenario is known here (the demo chose it); the monitor does not know it. Saying whether the
named signals are the ones the scenario moves is the demo's check of the monitor, not a hint to
it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from fatigue_guard.monitoring import MonitorReport
from fatigue_guard.simulation import SCENARIOS

# The signals each scenario is built to move (see simulation/scenarios.py): any one of them
# named counts as the monitor having found it.
SCENARIO_SIGNS: Final[dict[str, frozenset[str]]] = {
    "hrv_population_shift": frozenset({"hrv_rmssd_ms"}),
    "device_firmware": frozenset({"hrv_rmssd_ms", "hrv_rmssd_ratio"}),
    "seasonal_sleep": frozenset({"sleep_duration_h", "sleep_efficiency", "waso_min"}),
    "concept_shift": frozenset({"precision", "calibration"}),
    "label_shift": frozenset({"calibration"}),
    "none": frozenset(),
}


@dataclass(frozen=True)
class Finding:
    scenario: str
    breach: bool
    named: list[str]  # what fired: features (with where), physiology, people, performance
    signals: frozenset[str]  # bare names of what fired, for the scenario check
    reasons: list[str] = field(default_factory=list)
    report_id: int | None = None
    rows: int = 0

    @property
    def expected(self) -> frozenset[str]:
        return SCENARIO_SIGNS.get(self.scenario, frozenset())

    @property
    def matches(self) -> bool:
        """The monitor named a signal the scenario moves (or, without drift, stayed quiet)."""
        if not self.expected:
            return not self.breach
        return bool(self.expected & self.signals)

    def text(self, limit: int = 4) -> str:
        if not self.breach:
            return f"no breach in {self.rows:,} rows"
        shown = ", ".join(self.named[:limit])
        more = f" and {len(self.named) - limit} more" if len(self.named) > limit else ""
        verdict = "as the scenario predicts" if self.matches else "NOT what the scenario moves"
        return f"breach: {shown}{more} ({verdict}: {SCENARIOS[self.scenario]})"


def describe(report: MonitorReport, scenario: str) -> Finding:
    named: list[str] = []
    signals: set[str] = set()
    perf = report.performance
    if perf.precision_breach and perf.precision is not None:
        named.append(f"live precision {perf.precision:.2f} below the floor {perf.floor:.2f}")
        signals.add("precision")
    if perf.estimated_precision_breach and perf.estimated_precision is not None:
        named.append(f"estimated precision {perf.estimated_precision:.2f} below the floor")
        signals.add("precision")
    if perf.calibration_drift:
        named.append("calibration drift (labels disagree with the scores)")
        signals.add("calibration")
    for f in report.features:
        if f.drifted:
            where = (
                ", ".join(f"{s['column']}={s['value']}" for s in f.segments)
                if f.segments
                else "population-wide"
            )
            named.append(f"{f.name} drifted ({where})")
            signals.add(f.name)
    for p in report.physiology:
        if p.flagged and p.current_mean is not None and p.reference_mean is not None:
            direction = "lower" if p.current_mean < p.reference_mean else "higher"
            named.append(
                f"mean {p.name} {direction} ({p.current_mean:.3g} vs {p.reference_mean:.3g})"
            )
            signals.add(p.name)
    for person in report.persons:
        if person.flagged and person.name not in signals:
            named.append(f"{person.name} shifted per person")
            signals.add(person.name)
    for f in report.features:
        if f.missing_drifted:
            named.append(f"{f.name} missing more often")
    return Finding(
        scenario=scenario,
        breach=report.decision.breach,
        named=named,
        signals=frozenset(signals),
        reasons=list(report.decision.reasons),
        report_id=report.id,
        rows=report.rows,
    )
