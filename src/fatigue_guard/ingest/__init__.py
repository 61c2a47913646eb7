"""Importers: real wearable exports to contract-format tables (Fitbit + fatigue self-reports)."""

from fatigue_guard.ingest.build import ImportResult, import_fitbit
from fatigue_guard.ingest.errors import BadFileError, IngestError, LabelRuleError, MissingFileError
from fatigue_guard.ingest.labels import LabelRule

__all__ = [
    "BadFileError",
    "ImportResult",
    "IngestError",
    "LabelRule",
    "LabelRuleError",
    "MissingFileError",
    "import_fitbit",
]
