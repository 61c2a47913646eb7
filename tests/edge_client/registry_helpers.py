"""A genuinely different model version, made in seconds: the production forest's first trees.

Training takes 20-40 s here; a tree prefix of the registered forest is a smaller, valid forest
with different probabilities (so a different ONNX file), registered with every artifact the
gate and the edge exporter read (hold-out, golden vectors, ONNX, threshold, cut-off).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient

from fatigue_guard.config import Settings
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.model.onnx_export import export_onnx
from fatigue_guard.registry import get_model_version, load_pipeline
from fatigue_guard.registry.models import GOLDEN_ARTIFACT, HOLDOUT_ARTIFACT, ONNX_ARTIFACT
from fatigue_guard.registry.tracking import configure_mlflow, experiment_id
from fatigue_guard.training import artifacts

COPIED_TAGS = ("threshold", "features_version", "precision_floor", "train_cutoff")


def register_tree_prefix(settings: Settings, version: str, trees: int) -> str:
    """Register the first ``trees`` trees of ``version`` as a new version; returns its number."""
    client: MlflowClient = configure_mlflow(settings)
    name = settings.registered_model_name
    original = get_model_version(settings, version)
    pipeline = load_pipeline(settings, original)
    step, forest = pipeline.steps[-1]
    small = copy.copy(forest)
    small.estimators_ = forest.estimators_[:trees]
    small.n_estimators = trees
    prefix = copy.copy(pipeline)
    prefix.steps = [*pipeline.steps[:-1], (step, small)]
    with mlflow.start_run(experiment_id=experiment_id(settings, client), run_name="prefix") as run:
        info = mlflow.sklearn.log_model(prefix, name="model", serialization_format="cloudpickle")
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(original.run_id, HOLDOUT_ARTIFACT, tmp)
            mlflow.log_artifact(local, str(Path(HOLDOUT_ARTIFACT).parent))
            # Golden vectors of *this* forest, or the serving check would refuse the version.
            X_ho = feature_matrix(pd.read_parquet(local))
            mlflow.log_dict(artifacts.golden_set(prefix, X_ho, seed=0), GOLDEN_ARTIFACT)
            onnx_path = Path(tmp) / "model.onnx"
            onnx_path.write_bytes(export_onnx(prefix))
            mlflow.log_artifact(str(onnx_path), str(Path(ONNX_ARTIFACT).parent))
        run_id = run.info.run_id
    tags = client.get_model_version(name, version).tags or {}
    created = client.create_model_version(
        name,
        info.model_uri,
        run_id=run_id,
        tags={k: v for k, v in tags.items() if k in COPIED_TAGS},
    )
    return str(created.version)
