"""Training data assembly: read a contract-format table, validate every row, keep the good ones.

Real exports contain impossible values (RMSSD = 0 from a missing sensor, 18-hour "sleeps"). They
are excluded, never clipped, and counted by rule with a few examples; if more than a configured
share of rows is bad the run stops, because a model trained on a broken export is worse than none.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.frame import (
    ContractError,
    FrameReport,
    RuleViolation,
    coerce_feature_columns,
    validate_frame,
)
from fatigue_guard.contract.tables import read_table

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


class TooManyInvalidRows(ValueError):
    """More rows broke the contract than the configured share allows; carries the report."""

    def __init__(self, report: FrameReport, max_share: float) -> None:
        self.report = report
        self.max_share = max_share
        super().__init__(
            f"{report.invalid_share:.1%} of rows are invalid (limit {max_share:.1%}).\n"
            + report.summary()
        )


@dataclass
class TrainingData:
    """Valid rows (features coerced to float, label bool, measured_at UTC) plus provenance."""

    frame: pd.DataFrame
    report: FrameReport
    source: str
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def frame_sha256(frame: pd.DataFrame) -> str:
    """Content hash of an in-memory table (row order and values), for lineage."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def _parse_label(values: pd.Series) -> pd.Series:
    """Booleans from bool / 0-1 / 'true'-'false' columns; anything else becomes missing."""
    if values.dtype == bool:
        return values.astype("boolean")
    if pd.api.types.is_numeric_dtype(values):
        return values.map(lambda v: pd.NA if pd.isna(v) or v not in (0, 1) else bool(v)).astype(
            "boolean"
        )
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(_TRUE)] = True
    out[text.isin(_FALSE)] = False
    return out


def _flag(report: FrameReport, frame: pd.DataFrame, mask: np.ndarray, rule: str, col: str) -> None:
    count = int(mask.sum())
    if not count:
        return
    idx = np.flatnonzero(mask)[:3]
    keep = [c for c in ("event_id", "user_id", col) if c in frame.columns]
    examples = frame.iloc[idx][keep].astype(object).where(frame.iloc[idx][keep].notna(), None)
    report.violations.append(RuleViolation(rule, col, count, examples.to_dict(orient="records")))
    report.valid[mask] = False


def prepare_frame(
    raw: pd.DataFrame, *, require_label: bool = True
) -> tuple[pd.DataFrame, FrameReport]:
    """Coerce and validate a contract-format table; returns (all rows coerced, report).

    Beyond the feature rules, a training row needs a user, a parseable ``measured_at`` and a
    boolean label: splits are by user and time, and an unlabelled row teaches nothing.
    """
    for column in ("user_id", "measured_at") + ((LABEL_COLUMN,) if require_label else ()):
        if column not in raw.columns:
            raise ContractError(f"column {column!r} is required")
    frame = coerce_feature_columns(raw)
    report = validate_frame(frame)
    frame["measured_at"] = pd.to_datetime(
        frame["measured_at"], utc=True, errors="coerce", format="mixed"
    )
    _flag(report, raw, frame["measured_at"].isna().to_numpy(), "malformed timestamp", "measured_at")
    _flag(report, raw, frame["user_id"].isna().to_numpy(), "field required", "user_id")
    if require_label:
        frame[LABEL_COLUMN] = _parse_label(raw[LABEL_COLUMN])
        _flag(report, raw, frame[LABEL_COLUMN].isna().to_numpy(), "must be a boolean", LABEL_COLUMN)
    return frame, report


def with_live_records(baseline: pd.DataFrame, live: pd.DataFrame | None) -> pd.DataFrame:
    """Baseline table plus live labelled records, one row per ``event_id``.

    ``live`` is the data plane's reader output (served predictions joined with feedback). Rows
    without feedback teach nothing and are dropped; an event present in both keeps the live row,
    whose label is the user's actual feedback. Served-prediction columns are not features and
    are dropped so that the model never learns from its predecessor's output.
    """
    if live is None or live.empty:
        return baseline
    labelled = live[live[LABEL_COLUMN].notna()]
    keep = [c for c in baseline.columns if c in labelled.columns]
    combined = pd.concat([baseline, labelled[keep]], ignore_index=True)
    if "event_id" in combined.columns:
        ids = combined["event_id"].astype(str)
        combined = combined[~ids.duplicated(keep="last")].reset_index(drop=True)
    return combined


def load_training_data(
    data: pd.DataFrame | Path | str,
    *,
    max_invalid_share: float = 0.05,
    live: pd.DataFrame | None = None,
) -> TrainingData:
    """Read, validate and filter a training table (plus optional live labelled records).

    Raises :class:`TooManyInvalidRows` above ``max_invalid_share`` and
    :class:`~fatigue_guard.contract.frame.ContractError` when the table is unusable as a whole.
    """
    if isinstance(data, pd.DataFrame):
        raw, source, sha = data, "in-memory DataFrame", frame_sha256(data)
    else:
        path = Path(data)
        raw, source, sha = read_table(path), path.resolve().as_uri(), file_sha256(path)
    if live is not None and not live.empty:
        attrs = dict(raw.attrs)
        raw = with_live_records(raw, live)
        raw.attrs.update(attrs)
        source = f"{source} + live feedback ({int(live[LABEL_COLUMN].notna().sum())} labelled)"
        sha = frame_sha256(raw)  # the table actually trained on
    frame, report = prepare_frame(raw)
    if report.invalid_share > max_invalid_share:
        raise TooManyInvalidRows(report, max_invalid_share)
    valid = frame.loc[report.valid].copy()
    valid[LABEL_COLUMN] = valid[LABEL_COLUMN].astype(bool)
    valid["user_id"] = valid["user_id"].astype(str)
    valid = valid.sort_values(["measured_at", "user_id"], kind="mergesort").reset_index(drop=True)
    valid.attrs.update(raw.attrs)
    return TrainingData(frame=valid, report=report, source=source, sha256=sha)
