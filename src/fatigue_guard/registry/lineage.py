"""Provenance logged with every run: where the data came from, which code, what it looked like.

The drift-reference profile is the training data's fingerprint (quantiles, moments, missing
shares, category counts, score distribution) that the monitor compares live windows against, so
it is computed from exactly the rows the model was fitted on.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION, SEGMENT_COLUMNS

PROFILE_QUANTILES: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
# Simulator provenance, when the table carries it (DataFrame.attrs or constant columns).
SIMULATION_KEYS: tuple[str, ...] = ("seed", "scenario", "drift_start", "users", "days")


def git_commit(cwd: Path | None = None) -> dict[str, str]:
    """Commit of the code that trained the model, and whether the tree had local changes."""
    where = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": "unknown"}
    return {"commit": commit or "unknown", "dirty": str(bool(dirty)).lower()}


def _simulation_provenance(frame: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sim = frame.attrs.get("simulation") or frame.attrs.get("cohort_config") or {}
    if isinstance(sim, dict):
        out.update({k: sim[k] for k in SIMULATION_KEYS if k in sim})
    for key in SIMULATION_KEYS:
        column = f"simulation_{key}"
        if key not in out and column in frame.columns and frame[column].nunique() == 1:
            out[key] = frame[column].iloc[0]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in out.items()}


def dataset_lineage(
    frame: pd.DataFrame,
    *,
    source: str,
    sha256: str,
    invalid_rows: int,
    train_cutoff: pd.Timestamp,
) -> dict[str, Any]:
    """A JSON-able description of the training table (valid rows)."""
    ts = frame["measured_at"]
    return {
        "source": source,
        "sha256": sha256,
        "rows": len(frame),
        "invalid_rows_excluded": invalid_rows,
        "users": int(frame["user_id"].nunique()),
        "date_min": ts.min().isoformat(),
        "date_max": ts.max().isoformat(),
        "train_cutoff": train_cutoff.isoformat(),
        "features_version": FEATURES_VERSION,
        "simulation": _simulation_provenance(frame),
    }


def drift_profile(frame: pd.DataFrame, scores: np.ndarray | None = None) -> dict[str, Any]:
    """Per-feature quantiles, mean, variance, missing share; category counts; score quantiles."""
    features: dict[str, Any] = {}
    for name in FEATURE_NAMES:
        values = frame[name].to_numpy(dtype=float)
        present = values[~np.isnan(values)]
        features[name] = {
            "missing_share": float(np.isnan(values).mean()) if len(values) else 0.0,
            "count": len(present),
            "mean": float(present.mean()) if len(present) else None,
            "variance": float(present.var()) if len(present) else None,
            "quantiles": dict(
                zip(
                    [f"{q:g}" for q in PROFILE_QUANTILES],
                    np.quantile(present, PROFILE_QUANTILES).tolist()
                    if len(present)
                    else [None] * len(PROFILE_QUANTILES),
                    strict=True,
                )
            ),
        }
    categories = {
        col: frame[col].astype(str).value_counts().to_dict()
        for col in SEGMENT_COLUMNS
        if col in frame.columns
    }
    profile: dict[str, Any] = {
        "features_version": FEATURES_VERSION,
        "rows": len(frame),
        "features": features,
        "categories": categories,
    }
    if scores is not None and len(scores):
        profile["scores"] = {
            f"{q:g}": float(v)
            for q, v in zip(PROFILE_QUANTILES, np.quantile(scores, PROFILE_QUANTILES), strict=True)
        }
    return profile
