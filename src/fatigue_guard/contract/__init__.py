"""The feature contract and the request/response schemas built from it."""

from fatigue_guard.contract.features import (
    FEATURE_NAMES,
    FEATURES,
    FEATURES_BY_NAME,
    FEATURES_VERSION,
    ID_COLUMNS,
    INTEGER_FEATURES,
    LABEL_COLUMN,
    OPTIONAL_FEATURES,
    REQUIRED_FEATURES,
    SEGMENT_COLUMNS,
    FeatureSpec,
)

__all__ = [
    "FEATURES",
    "FEATURES_BY_NAME",
    "FEATURES_VERSION",
    "FEATURE_NAMES",
    "ID_COLUMNS",
    "INTEGER_FEATURES",
    "LABEL_COLUMN",
    "OPTIONAL_FEATURES",
    "REQUIRED_FEATURES",
    "SEGMENT_COLUMNS",
    "FeatureSpec",
]
