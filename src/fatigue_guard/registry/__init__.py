"""MLflow tracking and model registry: versions, aliases, the validation gate, lineage."""

from fatigue_guard.registry.gate import (
    DeploymentError,
    DeploymentEvent,
    GateResult,
    PromotionOutcome,
    evaluate_gate,
    on_deployment,
    promote,
    remove_deployment_listener,
    rollback,
)
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
    "DeploymentError",
    "DeploymentEvent",
    "GateResult",
    "PromotionOutcome",
    "RegisteredModel",
    "configure_mlflow",
    "evaluate_gate",
    "get_model_by_alias",
    "get_model_version",
    "list_versions",
    "load_golden",
    "load_onnx_bytes",
    "load_pipeline",
    "on_deployment",
    "promote",
    "remove_deployment_listener",
    "rollback",
]
