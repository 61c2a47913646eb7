"""Validate a whole table against the feature contract, vectorised.

Training data, offline scoring input and simulator output are tables, not JSON requests; checking
them row by row through Pydantic would take minutes at a million rows. This module applies the
same rules as :mod:`fatigue_guard.contract.schemas` column-wise and reports, per rule, how many
rows broke it with a few examples, so that a bad export is explained rather than silently fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fatigue_guard.contract.features import (
    FEATURE_NAMES,
    FEATURES,
    REQUIRED_FEATURES,
    SLEEP_STAGE_FIELDS,
    SLEEP_STAGE_MAX_TOTAL,
    SLEEP_STAGE_RULE,
)


class ContractError(ValueError):
    """A table cannot be used at all (a required column is missing, a column is not numeric)."""


@dataclass
class RuleViolation:
    rule: str
    field: str
    rows: int
    examples: list[dict[str, object]] = field(default_factory=list)


@dataclass
class FrameReport:
    """Outcome of :func:`validate_frame`: which rows are valid and why the others are not."""

    total_rows: int
    valid: np.ndarray  # boolean mask, one per input row
    violations: list[RuleViolation]

    @property
    def invalid_rows(self) -> int:
        return int(self.total_rows - self.valid.sum())

    @property
    def invalid_share(self) -> float:
        return self.invalid_rows / self.total_rows if self.total_rows else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "total_rows": self.total_rows,
            "invalid_rows": self.invalid_rows,
            "invalid_share": round(self.invalid_share, 6),
            "violations": [
                {"rule": v.rule, "field": v.field, "rows": v.rows, "examples": v.examples}
                for v in self.violations
            ],
        }

    def summary(self) -> str:
        lines = [f"{self.invalid_rows} of {self.total_rows} rows break the feature contract:"]
        for v in self.violations:
            lines.append(f"  {v.field}: {v.rule} ({v.rows} rows), e.g. {v.examples[:2]}")
        return "\n".join(lines)


def coerce_feature_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy whose feature columns are float64 (nullable values become NaN).

    Optional features absent from the table are added as all-missing columns: a tracker that
    never measures HRV exports no HRV column at all.
    """
    missing_required = [name for name in REQUIRED_FEATURES if name not in frame.columns]
    if missing_required:
        raise ContractError(f"required feature columns missing: {', '.join(missing_required)}")
    out = frame.copy()
    for name in FEATURE_NAMES:
        if name not in out.columns:
            out[name] = np.nan
            continue
        try:
            out[name] = pd.to_numeric(out[name], errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            raise ContractError(f"feature column {name!r} is not numeric: {exc}") from exc
    return out


def _examples(
    frame: pd.DataFrame, mask: np.ndarray, column: str, n: int
) -> list[dict[str, object]]:
    idx = np.flatnonzero(mask)[:n]
    keep = [c for c in ("event_id", "user_id") if c in frame.columns] + [column]
    rows = frame.iloc[idx][keep]
    return [
        {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
        for r in rows.to_dict(orient="records")
    ]


def validate_frame(frame: pd.DataFrame, *, examples: int = 3) -> FrameReport:
    """Check every row of ``frame`` (already passed through :func:`coerce_feature_columns`)."""
    n = len(frame)
    valid = np.ones(n, dtype=bool)
    violations: list[RuleViolation] = []

    def flag(mask: np.ndarray, rule: str, column: str) -> None:
        count = int(mask.sum())
        if count:
            violations.append(
                RuleViolation(rule, column, count, _examples(frame, mask, column, examples))
            )
            valid[mask] = False

    for spec in FEATURES:
        values = frame[spec.name].to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(values)
        missing = np.isnan(values)
        if spec.required:
            flag(missing, "field required", spec.name)
        flag(np.isinf(values), "must be a finite number", spec.name)
        with np.errstate(invalid="ignore"):
            upper_bad = values >= spec.maximum if spec.maximum_exclusive else values > spec.maximum
            out_of_range = finite & ((values < spec.minimum) | upper_bad)
        flag(out_of_range, f"out of range: {spec.range_text}", spec.name)
        if spec.integer:
            flag(
                finite & ~out_of_range & (np.floor(values) != values),
                "must be an integer",
                spec.name,
            )

    deep, rem = (frame[c].to_numpy(dtype="float64", na_value=np.nan) for c in SLEEP_STAGE_FIELDS)
    with np.errstate(invalid="ignore"):
        flag(deep + rem > SLEEP_STAGE_MAX_TOTAL, SLEEP_STAGE_RULE, "rem_sleep_pct")

    return FrameReport(total_rows=n, valid=valid, violations=violations)


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    """Features in contract order as float32, NaN for missing: the model's input layout."""
    return frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype="float32", na_value=np.nan)
