"""The chart format every dashboard panel answers in, and time bucketing for its series.

A chart is columnar, the way uPlot (and most plotting tools) take data: one ``x`` array (Unix
seconds) and, per series, a ``values`` array of the same length, ``null`` where there is nothing
to plot. ``bands`` pair two series into a shaded interval; ``reference`` series (a floor, a
threshold) are drawn but do not count as data. ``points`` counts the real data points, and
``empty`` (set exactly when there are none) says what will appear there and when.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Bucket widths (seconds) a series may be re-binned to; each a multiple of the ones before it
# that it must combine (10 s base buckets for a day, 60 s for a week).
NICE_STEPS_S = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass
class Series:
    key: str
    label: str
    values: list[float | None]
    unit: str = ""
    axis: str = "y"  # "y" (left) or "y2" (right)
    dash: bool = False
    reference: bool = False  # a constant guide line, not data
    show: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "values": self.values,
            "unit": self.unit,
            "axis": self.axis,
            "dash": self.dash,
            "reference": self.reference,
            "show": self.show,
        }


@dataclass
class Chart:
    id: str
    title: str
    x: list[float]
    series: list[Series]
    empty_text: str
    y_label: str = ""
    y2_label: str | None = None
    bands: list[tuple[str, str]] = field(default_factory=list)  # (upper key, lower key)
    source: str = ""
    y_range: tuple[float, float] | None = None  # fixed left axis (shares: 0 to 1)

    @property
    def points(self) -> int:
        return sum(1 for s in self.series if not s.reference for v in s.values if _finite(v))

    def as_dict(self) -> dict[str, Any]:
        points = self.points
        return {
            "id": self.id,
            "title": self.title,
            "source": self.source,
            "x": self.x,
            "series": [s.as_dict() for s in self.series],
            "y_label": self.y_label,
            "y2_label": self.y2_label,
            "bands": [{"upper": u, "lower": lo} for u, lo in self.bands],
            "y_range": list(self.y_range) if self.y_range else None,
            "points": points,
            "empty": None if points else self.empty_text,
        }


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def clean(value: float | None, digits: int = 4) -> float | None:
    """JSON-safe: NaN and infinities become null, the rest is rounded."""
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def nice_step(span_s: float, *, base_s: int, target_points: int = 90) -> int:
    """The smallest width from NICE_STEPS_S (a multiple of ``base_s``) giving at most
    ``target_points`` buckets over ``span_s``."""
    for step in NICE_STEPS_S:
        if step % base_s == 0 and span_s / step <= target_points:
            return step
    return NICE_STEPS_S[-1]


def axis(first_s: float, end_s: float, step_s: int) -> list[int]:
    """Bucket starts from the one holding ``first_s`` to the one holding ``end_s``."""
    start = int(first_s // step_s) * step_s
    stop = int(end_s // step_s) * step_s
    return list(range(start, stop + 1, step_s))


def rebin(points: Sequence[tuple[int, float]], starts: Sequence[int], step_s: int) -> list[float]:
    """Sum ``(bucket start, value)`` pairs into the buckets ``starts`` (zero where none)."""
    if not starts:
        return []
    totals = [0.0] * len(starts)
    origin = starts[0]
    for at, value in points:
        i = (at - origin) // step_s
        if 0 <= i < len(totals):
            totals[i] += value
    return totals


def ratio(numerators: Sequence[float], denominators: Sequence[float], scale: float = 1.0) -> list:
    return [
        clean(scale * n / d) if d > 0 else None
        for n, d in zip(numerators, denominators, strict=True)
    ]
