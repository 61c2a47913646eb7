"""The registry side of advisory mode: the version tags that mark a version advisory and why.

An advisory version is registered although no threshold met the precision floor, tagged
``alerting=advisory`` with the reason and the operating points that were attainable, so that
``fatigue-guard models``, ``/readyz`` and the dashboard can say why it does not alert.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from fatigue_guard.contract.alerting import ADVISORY, ALERTING_ON, Alerting, parse_alerting

TAG_ALERTING = "alerting"
TAG_ADVISORY_REASON = "alerting.reason"
TAG_ADVISORY_ATTAINABLE = "alerting.attainable"


def alerting_of(tags: Mapping[str, str] | None) -> Alerting:
    return parse_alerting((tags or {}).get(TAG_ALERTING))


def alerting_tags(
    reason: str | None = None, attainable: Mapping[str, float] | None = None
) -> dict[str, str]:
    """Version tags: ``alerting=on``, or ``advisory`` with its reason and attainable points."""
    if reason is None:
        return {TAG_ALERTING: ALERTING_ON}
    return {
        TAG_ALERTING: ADVISORY,
        TAG_ADVISORY_REASON: reason[:4000],
        TAG_ADVISORY_ATTAINABLE: json.dumps(
            {k: round(float(v), 4) for k, v in (attainable or {}).items()}, sort_keys=True
        ),
    }


def advisory_summary(tags: Mapping[str, str] | None) -> str | None:
    """One line for tables and status pages; ``None`` for an alerting version."""
    tags = tags or {}
    if alerting_of(tags) != ADVISORY:
        return None
    try:
        points = json.loads(tags.get(TAG_ADVISORY_ATTAINABLE, "{}"))
    except ValueError:
        points = {}
    attainable = ", ".join(f"{k}={v:.3f}" for k, v in points.items())
    return f"advisory (alerts off): {attainable or tags.get(TAG_ADVISORY_REASON, '')}".strip()
