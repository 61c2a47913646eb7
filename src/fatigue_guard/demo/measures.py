"""What the demo's table reports about the answers the phones got.

Precision and recall here are the alerts the phones showed (server and edge answers alike)
against the simulated truth of every moment: the figure the product promises, measured where a
person sees it. Only a share of moments gets feedback, so the monitor's own labelled figures are
narrower; they sit in its report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fatigue_guard.demo.phones import Answer
from fatigue_guard.model.stats import wilson_interval

Z_95 = 1.96


@dataclass(frozen=True)
class Quality:
    answers: int
    alerts: int
    events: int
    precision: float | None
    recall: float | None
    precision_interval: tuple[float, float] | None

    def text(self) -> str:
        if self.precision is None or self.precision_interval is None:
            return f"no alerts in {self.answers:,} answers"
        low, high = self.precision_interval
        recall = "n/a" if self.recall is None else f"{self.recall:.2f}"
        return (
            f"P {self.precision:.2f} (95% CI {low:.2f}-{high:.2f}, {self.alerts} alerts) / "
            f"R {recall}"
        )


def quality(answers: Iterable[Answer]) -> Quality:
    answered = [a for a in answers if a.alert is not None]
    alert = np.array([bool(a.alert) for a in answered], dtype=bool)
    truth = np.array([a.truth for a in answered], dtype=bool)
    alerts, events = int(alert.sum()), int(truth.sum())
    hits = int((alert & truth).sum())
    precision = hits / alerts if alerts else None
    return Quality(
        answers=len(answered),
        alerts=alerts,
        events=events,
        precision=precision,
        recall=hits / events if events else None,
        precision_interval=wilson_interval(hits, alerts, Z_95) if alerts else None,
    )


def latency(answers: Iterable[Answer]) -> tuple[float, float] | None:
    """p50 and p99 (ms) of what phones waited for the server's answers."""
    waited = [a.latency_ms for a in answers if a.latency_ms is not None]
    if not waited:
        return None
    p50, p99 = np.percentile(np.asarray(waited), [50, 99])
    return float(p50), float(p99)


def precision_against_floor(precision: float, floor: float) -> str:
    """A precision as the demo prints it, saying plainly when it is under the floor."""
    if precision >= floor:
        return f"{precision:.3f}"
    # Rounded down: a precision just under the floor must not print as the floor itself.
    return f"{math.floor(precision * 1000) / 1000:.3f} is BELOW the floor {floor:.2f}"
