"""The operating point of an advisory run: no threshold met the floor, the version never alerts.

``fatigue-guard train --advisory`` (and retraining with ``retrain_advisory``) registers such a
version anyway, so that an API can serve its probabilities and collect the features and
feedback a better model will be trained on. Its "choice" is the never-alert point: the
advisory threshold, no alerts, with the reason and the attainable operating points kept for
the registry tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fatigue_guard.contract.alerting import ADVISORY_THRESHOLD
from fatigue_guard.model.threshold import NoThresholdMeetsFloor, ThresholdChoice
from fatigue_guard.registry.alerting import alerting_tags


@dataclass(frozen=True)
class AdvisoryChoice(ThresholdChoice):
    """The never-alert operating point, and why no alerting one exists."""

    reason: str = ""
    attainable: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        base = ThresholdChoice.__dataclass_fields__
        return {k: float(getattr(self, k)) for k in base}


def advisory_choice(exc: NoThresholdMeetsFloor, confidence_z: float) -> AdvisoryChoice:
    return AdvisoryChoice(
        threshold=ADVISORY_THRESHOLD,
        precision=0.0,
        precision_lower_bound=0.0,
        recall=0.0,
        alert_rate=0.0,
        alerts=0,
        floor=exc.floor,
        confidence_z=confidence_z,
        reason=str(exc),
        attainable=dict(exc.attainable),
    )


def choice_tags(choice: ThresholdChoice) -> dict[str, str]:
    """The ``alerting`` version tags of a run's operating point."""
    if isinstance(choice, AdvisoryChoice):
        return alerting_tags(choice.reason, choice.attainable)
    return alerting_tags()
