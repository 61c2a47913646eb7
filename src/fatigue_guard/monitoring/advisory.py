"""The retrain reason an advisory production version gives while labelled feedback accrues.

An advisory version (no threshold met the precision floor) serves probabilities and never
alerts; the only way out is a retrained version that meets the floor on live labels. So the
monitor names a breach whenever production is advisory and its window holds at least
``monitor_min_labels`` labelled records: the usual trigger then retrains on the accrued data,
paced by the usual cool-down, until the gate promotes a version that alerts.
"""

from __future__ import annotations

from fatigue_guard.config import Settings
from fatigue_guard.monitoring.performance import Performance
from fatigue_guard.registry.models import RegisteredModel

ADVISORY_REASON = "advisory: floor not yet met"


def advisory_reason(
    model: RegisteredModel | None, performance: Performance, settings: Settings
) -> str | None:
    if model is None or not model.advisory:
        return None
    if performance.labels < settings.monitor_min_labels:
        return None
    return (
        f"{ADVISORY_REASON} (production v{model.version} serves without alerts; "
        f"{performance.labels} labelled records in the window to retrain on)"
    )
