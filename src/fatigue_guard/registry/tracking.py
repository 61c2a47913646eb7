"""MLflow wiring: one place decides where runs, artifacts and the registry live."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from mlflow.environment_variables import MLFLOW_REGISTRY_URI, MLFLOW_TRACKING_URI
from mlflow.exceptions import MlflowException

from fatigue_guard.config import Settings


def _set_uris_without_env_leak(uri: str) -> None:
    """Set MLflow's process-wide URIs, then put its environment variables back as they were.

    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI`` (for subprocesses). Our
    :class:`Settings` honours that variable, so without this every ``Settings()`` built later in
    the process (another HOME in a test, the serving app) would silently inherit the first store.
    """
    saved = [
        (var, var.get() if var.defined else None)
        for var in (MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI)
    ]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for var, value in saved:
        if value is None:
            var.unset()
        else:
            var.set(value)


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists.

    With the default embedded SQLite store the experiment is created with an explicit artifact
    location under HOME; without it MLflow would write ``./mlruns`` in whatever directory the
    process happens to run from. An MLflow server (``MLFLOW_TRACKING_URI``) keeps its own.
    """
    uri = settings.effective_mlflow_tracking_uri
    embedded = settings.mlflow_tracking_uri is None
    if embedded:
        settings.ensure_home()
        settings.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    _set_uris_without_env_leak(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if client.get_experiment_by_name(settings.mlflow_experiment) is None:
        location = settings.mlflow_artifact_root.as_uri() if embedded else None
        try:
            client.create_experiment(settings.mlflow_experiment, artifact_location=location)
        except MlflowException:
            # Another process created it between our check and create: that is fine.
            if client.get_experiment_by_name(settings.mlflow_experiment) is None:
                raise
    return client


def experiment_id(settings: Settings, client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:  # pragma: no cover - configure_mlflow creates it
        raise LookupError(f"MLflow experiment {settings.mlflow_experiment!r} missing")
    return experiment.experiment_id
