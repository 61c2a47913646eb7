"""Files a run leaves behind for people (plots, tables) and for other components (golden set).

Everything is written into one directory that is logged as run artifacts in one call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: training runs in jobs and CI, never with a display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, precision_recall_curve

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION

GOLDEN_ROWS = 64


def write_json(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def pr_curve_png(
    path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], floor: float, threshold: float
) -> Path:
    """Precision-recall curves per view, with the floor and the chosen operating point."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, (y, s) in curves.items():
        precision, recall, thresholds = precision_recall_curve(y, s)
        ax.plot(recall, precision, label=label)
        i = int(np.searchsorted(thresholds, threshold).clip(0, len(thresholds) - 1))
        ax.scatter([recall[i]], [precision[i]], zorder=3)
    ax.axhline(floor, linestyle="--", color="grey", label=f"precision floor {floor:.2f}")
    ax.set(xlabel="recall", ylabel="precision", title=f"PR curve (threshold {threshold:.3f})")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def calibration_png(path: Path, y: np.ndarray, s: np.ndarray) -> Path:
    frac_pos, mean_pred = calibration_curve(y, s, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.plot(mean_pred, frac_pos, marker="o")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed fatigue rate",
        title="Calibration (hold-out)",
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion(metrics: dict[str, float]) -> dict[str, int]:
    return {k: int(metrics[k]) for k in ("tp", "fp", "fn", "tn")}


def permutation_importances(
    pipeline: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    max_rows: int = 2000,
    repeats: int = 3,
) -> pd.DataFrame:
    """Drop in PR-AUC when one feature is shuffled, on (a sample of) the hold-out.

    Impurity importances favour high-cardinality features and say nothing about held-out skill;
    permutation on held-out rows does. All permuted copies are scored in ONE ``predict_proba``
    call: per-call overhead (thread pools) dominates when scoring a few thousand rows 50 times.
    """
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(y), size=min(max_rows, len(y)), replace=False)
    Xs, ys = X[idx], y[idx]
    n, d = Xs.shape
    blocks = [Xs]
    for _ in range(repeats):
        for j in range(d):
            permuted = Xs.copy()
            permuted[:, j] = permuted[rng.permutation(n), j]
            blocks.append(permuted)
    proba = pipeline.predict_proba(np.vstack(blocks))[:, -1].reshape(len(blocks), n)
    base = average_precision_score(ys, proba[0])
    drops = (base - np.array([average_precision_score(ys, p) for p in proba[1:]])).reshape(
        repeats, d
    )
    return (
        pd.DataFrame(
            {
                "feature": FEATURE_NAMES,
                "importance_mean": drops.mean(axis=0),
                "importance_std": drops.std(axis=0),
            }
        )
        .sort_values("importance_mean", ascending=False)
        .reset_index(drop=True)
    )


def golden_set(pipeline: Any, X: np.ndarray, *, seed: int, n: int = GOLDEN_ROWS) -> dict[str, Any]:
    """~64 hold-out vectors and the pipeline's probabilities, a quarter with extra nulls.

    Serving checks a freshly loaded version (sklearn or ONNX) reproduces these before swapping,
    so the set deliberately exercises the missing-value path.
    """
    from fatigue_guard.contract.features import OPTIONAL_FEATURES

    rng = np.random.default_rng(seed)
    rows = X[rng.choice(len(X), size=min(n, len(X)), replace=False)].copy()
    optional = [FEATURE_NAMES.index(f) for f in OPTIONAL_FEATURES]
    for r in range(0, len(rows), 4):
        rows[r, rng.choice(optional, size=min(4, len(optional)), replace=False)] = np.nan
    proba = pipeline.predict_proba(rows)[:, -1]
    return {
        "features_version": FEATURES_VERSION,
        "features": list(FEATURE_NAMES),
        "rows": [[None if np.isnan(v) else float(v) for v in row] for row in rows],
        "probabilities": [float(p) for p in proba],
    }
