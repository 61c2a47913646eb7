"""Whether a model version may raise alerts, in the words every side uses (API, phone, registry).

A version is ``on`` when its decision threshold met the precision floor (with its confidence
margin) in training, and ``advisory`` when none did but it was registered anyway so that the
loop can start: it serves probabilities, never alerts, and says so in every answer. The one rule
below is shared by the server's scoring and the phone's edge scoring so they cannot disagree.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Alerting = Literal["on", "advisory"]
ALERTING_ON: Final[Alerting] = "on"
ADVISORY: Final[Alerting] = "advisory"
ALERTING_VALUES: Final[tuple[str, ...]] = get_args(Alerting)

# The threshold an advisory version carries where a number is required (registry tag, edge
# manifest, stored predictions): no probability exceeds it, and the alerting flag, not this
# number, is what keeps an advisory version silent (a forest can score exactly 1.0).
ADVISORY_THRESHOLD: Final[float] = 1.0


def parse_alerting(value: str | None) -> Alerting:
    """``advisory`` only when said so: a version without the flag is an alerting one."""
    return ADVISORY if value == ADVISORY else ALERTING_ON


def decide_alert(probability: float, threshold: float, alerting: Alerting) -> bool:
    """The alert flag of one answer: never for an advisory version."""
    return alerting == ALERTING_ON and probability >= threshold
