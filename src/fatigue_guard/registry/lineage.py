"""Provenance logged with every run: where the data came from and which code trained on it.

(The drift-reference profile the monitor compares against is built by
:func:`fatigue_guard.model.profile.build_reference_profile`.)
"""

from __future__ import annotations

import subprocess  # nosec B404
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from fatigue_guard.contract.features import FEATURES_VERSION

# Simulator provenance, when the table carries it (DataFrame.attrs or constant columns).
SIMULATION_KEYS: tuple[str, ...] = ("seed", "scenario", "drift_start", "users", "days")


def git_commit(cwd: Path | None = None) -> dict[str, str]:
    """Commit of the code that trained the model, and whether the tree had local changes."""
    where = cwd or Path(__file__).resolve().parent
    try:
        # Git from PATH, fixed arguments.
        commit = subprocess.run(  # nosec B603 B607
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        # Git from PATH, fixed arguments.
        dirty = subprocess.run(  # nosec B603 B607
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


def training_file(run_tags: dict[str, str]) -> Path | None:
    """The local file a run trained on, from its ``data.source`` tag; ``None`` if not a file.

    The tag may name live records after the file (``file:///x.parquet + live feedback (...)``);
    only the file part is returned.
    """
    source = run_tags.get("data.source", "").split(" + ")[0]
    parsed = urlparse(source)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None
