"""The sanity check a model version must pass before it may serve.

Two questions, asked of the loaded predictor (the object that will answer requests, not the
pipeline it came from): does it reproduce the probabilities logged with the version for its
golden vectors (a wrong or corrupted artifact, a runtime that routes NaN differently, a file
exported for another pipeline all show up here), and does it answer a single row within the
latency budget on this machine, now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

# The ONNX-vs-scikit-learn parity bound of the fast path (golden probabilities are scikit-learn's);
# the exporter's self-check uses the same bound (model.onnx_export.EXPORT_TOLERANCE).
GOLDEN_TOLERANCE = 1e-5
LATENCY_PROBES = 40


class ModelCheckFailed(ValueError):
    """The version does not reproduce its golden probabilities or is too slow."""


@dataclass(frozen=True)
class CheckReport:
    golden_rows: int
    max_abs_diff: float
    latency_p50_ms: float
    latency_p95_ms: float

    def as_dict(self) -> dict[str, float]:
        return {
            "golden_rows": self.golden_rows,
            "max_abs_diff": self.max_abs_diff,
            "latency_p50_ms": round(self.latency_p50_ms, 4),
            "latency_p95_ms": round(self.latency_p95_ms, 4),
        }


def check_model(
    predictor: object,
    golden: tuple[np.ndarray, np.ndarray] | None,
    *,
    latency_budget_ms: float,
    tolerance: float = GOLDEN_TOLERANCE,
) -> CheckReport:
    """Raise :class:`ModelCheckFailed` unless ``predictor`` passes both checks."""
    if golden is None or len(golden[0]) == 0:
        raise ModelCheckFailed("no golden vectors were logged with this version")
    X, expected = golden
    got = np.asarray(predictor.predict_proba(X), dtype=np.float64)  # type: ignore[attr-defined]
    if got.shape != expected.shape:
        raise ModelCheckFailed(f"golden output shape {got.shape} != logged {expected.shape}")
    diff = float(np.max(np.abs(got - expected)))
    if not np.isfinite(diff) or diff > tolerance:
        raise ModelCheckFailed(
            f"golden vectors: max |probability - logged| = {diff:.3g} > {tolerance:g}"
        )
    # Single rows, like requests; p95 so that one scheduler hiccup on a busy host is not a verdict.
    timings = np.empty(LATENCY_PROBES)
    for i in range(LATENCY_PROBES):
        row = X[i % len(X)].reshape(1, -1)
        start = time.perf_counter()
        predictor.predict_proba(row)  # type: ignore[attr-defined]
        timings[i] = (time.perf_counter() - start) * 1000
    p50, p95 = (float(v) for v in np.percentile(timings, [50, 95]))
    if p95 > latency_budget_ms:
        raise ModelCheckFailed(
            f"single-row latency p95 {p95:.1f} ms exceeds the budget {latency_budget_ms:g} ms"
        )
    return CheckReport(len(X), diff, p50, p95)
