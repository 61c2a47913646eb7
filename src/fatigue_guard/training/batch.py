"""Batch scoring of a contract-format table with a registered model version.

Rows that break the feature contract are **excluded and reported** (counts per rule, a few
examples, optionally written to a side file) rather than scored: a probability computed from an
impossible value would look like any other and be trusted. The output keeps every input column
of the valid rows, so it joins back to the source on ``event_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fatigue_guard.config import Settings
from fatigue_guard.contract.frame import (
    FrameReport,
    coerce_feature_columns,
    feature_matrix,
    validate_frame,
)
from fatigue_guard.model.pipeline import positive_proba
from fatigue_guard.registry.models import (
    PRODUCTION,
    RegisteredModel,
    get_model_by_alias,
    get_model_version,
    load_pipeline,
)


class NoModelError(LookupError):
    """There is no production model (and no version was named)."""


@dataclass
class ScoredTable:
    scored: pd.DataFrame  # valid input rows + fatigue_probability, alert, model_version
    rejected: pd.DataFrame  # input rows that broke the contract, untouched
    report: FrameReport
    model: RegisteredModel


def resolve_model(settings: Settings, model_version: str | None) -> RegisteredModel:
    if model_version is not None:
        return get_model_version(settings, model_version)
    model = get_model_by_alias(settings, PRODUCTION)
    if model is None:
        raise NoModelError(
            f"no {PRODUCTION!r} version of {settings.registered_model_name!r}: train one first"
        )
    return model


def score_table(
    settings: Settings, table: pd.DataFrame, *, model_version: str | None = None
) -> ScoredTable:
    """Score every valid row with ``model_version`` (default: the production alias)."""
    model = resolve_model(settings, model_version)
    coerced = coerce_feature_columns(table)
    report = validate_frame(coerced)
    valid = report.valid
    probabilities = (
        positive_proba(load_pipeline(settings, model), feature_matrix(coerced.loc[valid]))
        if valid.any()
        else np.array([], dtype=float)
    )
    scored = table.loc[valid].copy()
    scored["fatigue_probability"] = probabilities
    scored["alert"] = probabilities >= model.threshold
    scored["model_version"] = model.version
    return ScoredTable(scored, table.loc[~valid].copy(), report, model)
