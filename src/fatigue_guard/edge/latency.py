"""Single-vector latency of a predictor, as the edge budget and the benchmark measure it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency in milliseconds over ``calls`` timed calls (after warm-up)."""

    calls: int
    median_ms: float
    p99_ms: float
    mean_ms: float

    def as_dict(self) -> dict[str, float]:
        return {
            "calls": float(self.calls),
            "median_ms": self.median_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
        }


def time_calls(
    call: Callable[[np.ndarray], object], rows: np.ndarray, *, calls: int, warm_up: int = 50
) -> LatencyStats:
    """Time ``call(rows[i:i+1])`` cycling over ``rows``; each call timed on its own.

    Per-call timing (not total / n) because the budget is a p99, and the tail is what a shared
    2-core machine spoils. Different rows, because one cached row flatters tree traversal.
    """
    singles = [rows[i : i + 1] for i in range(len(rows))]
    for i in range(warm_up):
        call(singles[i % len(singles)])
    samples = np.empty(calls, dtype=np.float64)
    clock = time.perf_counter_ns
    for i in range(calls):
        row = singles[i % len(singles)]
        start = clock()
        call(row)
        samples[i] = clock() - start
    samples /= 1e6
    return LatencyStats(
        calls=calls,
        median_ms=float(np.median(samples)),
        p99_ms=float(np.percentile(samples, 99)),
        mean_ms=float(samples.mean()),
    )
