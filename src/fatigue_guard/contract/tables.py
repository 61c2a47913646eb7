"""Read and write contract-format tables (Parquet or CSV, chosen by the file suffix).

A contract-format table has the id columns (``event_id, user_id, measured_at``), optional
segment columns (``device_model, platform, app_version``), the features and, for training data,
the ``fatigue_event`` label. The simulator writes such tables; training and batch scoring read
them, including tables people bring from their own trackers. Reading normalises what file
formats blur: ids and segments become strings, ``measured_at`` a tz-aware UTC timestamp.
Feature values are left as found; check them with
:func:`~fatigue_guard.contract.frame.validate_frame`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pandas as pd

from fatigue_guard.contract.features import ID_COLUMNS, LABEL_COLUMN, SEGMENT_COLUMNS
from fatigue_guard.contract.frame import ContractError

PARQUET_SUFFIXES: Final[frozenset[str]] = frozenset({".parquet", ".pq"})
CSV_SUFFIXES: Final[frozenset[str]] = frozenset({".csv"})
_TEXT_COLUMNS: Final[tuple[str, ...]] = ("event_id", "user_id", *SEGMENT_COLUMNS)


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    known = ", ".join(sorted(PARQUET_SUFFIXES | CSV_SUFFIXES))
    raise ContractError(f"{path}: unknown table format {suffix!r} (use one of {known})")


def write_table(frame: pd.DataFrame, path: Path | str) -> Path:
    """Write ``frame`` to ``path`` (.parquet or .csv), creating parent folders; returns the path.

    CSV timestamps are written as ISO 8601 with their UTC offset, so they read back unambiguously.
    """
    path = Path(path)
    kind = _format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        out = frame.copy()
        if "measured_at" in out.columns and isinstance(
            out["measured_at"].dtype, pd.DatetimeTZDtype
        ):
            stamps = out["measured_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z")
            out["measured_at"] = stamps.str.replace(r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
        out.to_csv(path, index=False)
    return path


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a contract-format table; ``measured_at`` becomes ``datetime64[ns, UTC]``.

    Raises :class:`ContractError` when an id column is missing or a timestamp cannot be parsed
    (timestamps without an offset are refused: their instant is unknown).
    """
    path = Path(path)
    kind = _format(path)
    if kind == "parquet":
        frame = pd.read_parquet(path)
    else:
        text = {name: "string" for name in _TEXT_COLUMNS}
        frame = pd.read_csv(path, dtype=text, keep_default_na=True)
    missing = [name for name in ID_COLUMNS if name not in frame.columns]
    if missing:
        raise ContractError(f"{path}: id columns missing: {', '.join(missing)}")
    for name in _TEXT_COLUMNS:
        if name in frame.columns:
            frame[name] = frame[name].astype("str")
    frame["measured_at"] = _utc_timestamps(frame["measured_at"], path)
    if LABEL_COLUMN in frame.columns and frame[LABEL_COLUMN].dtype != bool:
        frame[LABEL_COLUMN] = _labels(frame[LABEL_COLUMN], path)
    return frame


def _utc_timestamps(values: pd.Series, path: Path) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        raise ContractError(f"{path}: measured_at has no time zone; store it with a UTC offset")
    text = values.astype("str")
    has_offset = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    if not bool(has_offset.all()):
        bad = text[~has_offset].iloc[0]
        raise ContractError(f"{path}: measured_at {bad!r} has no UTC offset")
    try:
        parsed = pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise ContractError(f"{path}: measured_at cannot be parsed: {exc}") from exc
    return parsed.astype("datetime64[ns, UTC]")


def _labels(values: pd.Series, path: Path) -> pd.Series:
    """Accept booleans written as true/false, 1/0 or True/False; refuse anything else."""
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    text = values.astype("str").str.strip().str.lower()
    labels = text.map(mapping)
    if labels.isna().any():
        bad = values[labels.isna()].iloc[0]
        raise ContractError(f"{path}: {LABEL_COLUMN} must be true/false, got {bad!r}")
    return labels.astype(bool)
