"""MLflow adapter: tracking, registered versions and aliases, artifacts, lineage."""

from fatigue_guard.registry.models import (
    PRODUCTION,
    STAGING,
    RegisteredModel,
    get_model_by_alias,
    get_model_version,
    list_versions,
    load_golden,
    load_onnx_bytes,
    load_pipeline,
)
from fatigue_guard.registry.tracking import configure_mlflow

__all__ = [
    "PRODUCTION",
    "STAGING",
    "RegisteredModel",
    "configure_mlflow",
    "get_model_by_alias",
    "get_model_version",
    "list_versions",
    "load_golden",
    "load_onnx_bytes",
    "load_pipeline",
]
