"""Single-vector latency of a predictor, as the edge budget and the benchmark measure it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Clock = Literal["wall", "cpu"]
_CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.thread_time_ns}


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
    call: Callable[[np.ndarray], object],
    rows: np.ndarray,
    *,
    calls: int,
    warm_up: int = 50,
    clock: Clock = "wall",
) -> LatencyStats:
    """Time ``call(rows[i:i+1])`` cycling over ``rows``; each call timed on its own.

    Per-call timing (not total / n) because the budget is a p99. Different rows, because one
    cached row flatters tree traversal. ``clock="wall"`` is what a caller waits; ``"cpu"``
    (this thread's CPU time, ~1 us overhead) is what the model costs, and is the one to hold a
    budget against on a shared machine: with load 7 on 2 cores, wall-clock p99 measures the
    neighbours (a 60-tree forest read 0.05 ms one run and over 1 ms the next).
    """
    singles = [rows[i : i + 1] for i in range(len(rows))]
    for i in range(warm_up):
        call(singles[i % len(singles)])
    samples = np.empty(calls, dtype=np.float64)
    now = _CLOCKS[clock]
    for i in range(calls):
        row = singles[i % len(singles)]
        start = now()
        call(row)
        samples[i] = now() - start
    samples /= 1e6
    return LatencyStats(
        calls=calls,
        median_ms=float(np.median(samples)),
        p99_ms=float(np.percentile(samples, 99)),
        mean_ms=float(samples.mean()),
    )
