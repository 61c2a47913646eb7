"""Simulated cohorts, a small scorer and reference profiles for the monitoring tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from fatigue_guard.config import Settings
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.model.pipeline import build_pipeline, positive_proba
from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.simulation import CohortConfig, simulate_cohort

# The floor the scorer's threshold is chosen for (the production default).
FLOOR = 0.75


@dataclass(frozen=True)
class Scorer:
    """A small forest trained on an undrifted cohort that no test window comes from."""

    pipeline: Any
    threshold: float

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out["probability"] = positive_proba(self.pipeline, feature_matrix(frame))
        out["alert"] = out["probability"] >= self.threshold
        return out


def train_scorer(seed: int = 1000) -> Scorer:
    """Fit on one undrifted cohort; choose the threshold on another so that precision clears
    the floor with a margin (as training does), so an undrifted window is not a breach."""
    frame = simulate_cohort(CohortConfig(users=500, days=28, scenario="none", seed=seed))
    pipeline = build_pipeline(
        {"max_depth": 8, "min_samples_leaf": 40}, n_estimators=30, seed=seed, n_jobs=2
    )
    pipeline.fit(feature_matrix(frame), frame["fatigue_event"].to_numpy())
    check = simulate_cohort(CohortConfig(users=300, days=28, scenario="none", seed=seed + 1))
    p = positive_proba(pipeline, feature_matrix(check))
    y = check["fatigue_event"].to_numpy()
    order = np.argsort(-p)
    precision = np.cumsum(y[order]) / np.arange(1, len(y) + 1)
    # Lowest threshold whose precision (over at least 200 alerts) stays >= floor + 0.07.
    ok = np.flatnonzero((precision >= FLOOR + 0.07) & (np.arange(len(y)) >= 200))
    threshold = float(p[order][ok.max()]) if len(ok) else 0.5
    return Scorer(pipeline, threshold)


def days_between(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    """Rows measured on cohort days ``first`` .. ``last - 1`` (day 0 = the first UTC date)."""
    start = frame["measured_at"].min().normalize()
    day = (frame["measured_at"] - start) // timedelta(days=1)
    return frame[(day >= first) & (day < last)].reset_index(drop=True)


def reference_from(scored: pd.DataFrame) -> ReferenceProfile:
    return ReferenceProfile.from_frame(
        scored, scored["probability"].to_numpy(), scored["fatigue_event"].to_numpy()
    )


def monitor_settings(tmp_home: Any = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_home or ".fatigue-guard-test",
        "database_url": None,
        "azure_storage_connection_string": None,
        "mlflow_tracking_uri": None,
    }
    values.update(overrides)
    return Settings(**values)


def window_ids(n: int) -> np.ndarray:
    return np.arange(n)


def write_live(
    blobs: Any, frame: pd.DataFrame, *, model_version: str, batch_rows: int = 50_000
) -> int:
    """Write scored rows into the blob feature store as the outbox would (one Parquet file per
    batch and UTC date, same layout and schema), without building a record object per row."""
    import pyarrow as pa

    from fatigue_guard.contract.features import FEATURES_VERSION
    from fatigue_guard.storage.blob.feature_store import SCHEMA, _to_parquet, partition_key

    out = pd.DataFrame(
        {
            "event_id": frame["event_id"].astype(str),
            "user_id": frame["user_id"].astype(str),
            "measured_at": frame["measured_at"],
            "received_at": frame["measured_at"],
            **{
                f.name: frame[f.name]
                for f in SCHEMA
                if f.name in frame.columns
                and f.type == pa.float64()
                and f.name not in ("probability", "threshold")
            },
            "probability": frame["probability"],
            "alert": frame["alert"],
            "threshold": np.nan,
            "model_name": "fatigue-rf",
            "model_version": model_version,
            "served_by": np.where(np.arange(len(frame)) % 3 == 0, "edge", "server"),
            "device_model": frame["device_model"],
            "platform": frame["platform"],
            "app_version": frame["app_version"],
        }
    )
    day = out["measured_at"].dt.date
    files = 0
    for d, part in out.groupby(day, sort=True):
        for i, start in enumerate(range(0, len(part), batch_rows)):
            table = pa.Table.from_pandas(
                part.iloc[start : start + batch_rows], schema=SCHEMA, preserve_index=False
            )
            blobs.put(partition_key(FEATURES_VERSION, d, f"bench-{i:04d}"), _to_parquet(table))
            files += 1
    return files
