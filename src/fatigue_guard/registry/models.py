"""Registered model versions: what serving, scoring and the gate need to know and load.

A version's decision threshold travels with it as a version tag: a model without its threshold
is not deployable, and a threshold chosen for another model is wrong for this one.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from sklearn.pipeline import Pipeline

from fatigue_guard.config import Settings
from fatigue_guard.contract.alerting import ALERTING_ON, Alerting
from fatigue_guard.model.profile import PROFILE_ARTIFACT, ProfileError, ReferenceProfile
from fatigue_guard.registry.alerting import alerting_of
from fatigue_guard.registry.tracking import configure_mlflow

PRODUCTION = "production"
STAGING = "staging"

# Run artifact paths (serving and the gate read them back).
ONNX_ARTIFACT = "onnx/model.onnx"
GOLDEN_ARTIFACT = "golden/golden.json"
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"

# Version tag names.
TAG_THRESHOLD = "threshold"
TAG_FLOOR = "precision_floor"
TAG_FEATURES_VERSION = "features_version"
TAG_TRAIN_CUTOFF = "train_cutoff"
TAG_GATE_RESULT = "gate.result"
TAG_GATE_REASON = "gate.reason"
TAG_PREVIOUS = "deployment.previous_version"


@dataclass(frozen=True)
class RegisteredModel:
    """One registered version and the facts needed to serve it."""

    name: str
    version: str
    threshold: float
    features_version: int
    run_id: str
    precision_floor: float
    # ``advisory``: registered although no threshold met the floor; it never alerts.
    alerting: Alerting = ALERTING_ON

    @property
    def advisory(self) -> bool:
        return self.alerting != ALERTING_ON


def model_from_version(mv: ModelVersion) -> RegisteredModel:
    tags = mv.tags or {}
    if TAG_THRESHOLD not in tags:
        raise LookupError(f"model {mv.name} version {mv.version} has no {TAG_THRESHOLD!r} tag")
    return RegisteredModel(
        name=mv.name,
        version=str(mv.version),
        threshold=float(tags[TAG_THRESHOLD]),
        features_version=int(tags.get(TAG_FEATURES_VERSION, 0)),
        run_id=mv.run_id,
        precision_floor=float(tags.get(TAG_FLOOR, "nan")),
        alerting=alerting_of(tags),
    )


def get_model_by_alias(settings: Settings, alias: str = PRODUCTION) -> RegisteredModel | None:
    """The version an alias points to, or ``None`` when the model or the alias does not exist."""
    client = configure_mlflow(settings)
    try:
        mv = client.get_model_version_by_alias(settings.registered_model_name, alias)
    except MlflowException:
        return None
    return model_from_version(mv)


def get_model_version(settings: Settings, version: str) -> RegisteredModel:
    client = configure_mlflow(settings)
    return model_from_version(
        client.get_model_version(settings.registered_model_name, str(version))
    )


def load_pipeline(settings: Settings, model: RegisteredModel) -> Pipeline:
    """The fitted scikit-learn pipeline (sentinel imputer + forest) of a version."""
    configure_mlflow(settings)
    return mlflow.sklearn.load_model(f"models:/{model.name}/{model.version}")


def _download(settings: Settings, run_id: str, artifact: str, reader: Any) -> Any | None:
    configure_mlflow(settings)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=artifact,
                dst_path=tmp,
                tracking_uri=settings.effective_mlflow_tracking_uri,
            )
        except (MlflowException, OSError):
            return None
        path = Path(local)
        return reader(path) if path.is_file() else None


def load_onnx_bytes(settings: Settings, model: RegisteredModel) -> bytes | None:
    """The version's ONNX export, or ``None`` if it was trained before the exporter existed."""
    return _download(settings, model.run_id, ONNX_ARTIFACT, Path.read_bytes)


def load_golden(settings: Settings, model: RegisteredModel) -> tuple[np.ndarray, np.ndarray] | None:
    """Golden vectors (float32, NaN = null, contract order) and the pipeline's probabilities."""
    doc = _download(settings, model.run_id, GOLDEN_ARTIFACT, lambda p: json.loads(p.read_text()))
    if doc is None:
        return None
    X = np.array([[np.nan if v is None else v for v in row] for row in doc["rows"]], np.float32)
    return X, np.asarray(doc["probabilities"], dtype=np.float64)


def load_holdout(settings: Settings, model: RegisteredModel) -> pd.DataFrame | None:
    """The labelled, time-held-out rows the version was evaluated on (used by the gate)."""
    return _download(settings, model.run_id, HOLDOUT_ARTIFACT, pd.read_parquet)


@dataclass(frozen=True)
class VersionRow:
    """One line of ``fatigue-guard models``."""

    version: str
    aliases: tuple[str, ...]
    created: pd.Timestamp
    threshold: float | None
    tags: dict[str, str]


def list_versions(settings: Settings) -> list[VersionRow]:
    """All versions, newest first, with their aliases and tags."""
    client = configure_mlflow(settings)
    name = settings.registered_model_name
    try:
        versions = client.search_model_versions(f"name = '{name}'")
        # search results leave ``aliases`` empty on some stores; the registered model has them.
        alias_map = dict(client.get_registered_model(name).aliases or {})
    except MlflowException:
        return []
    aliases_of: dict[str, list[str]] = {}
    for alias, version in alias_map.items():
        aliases_of.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(versions, key=lambda m: int(m.version), reverse=True):
        tags = dict(mv.tags or {})
        rows.append(
            VersionRow(
                version=str(mv.version),
                aliases=tuple(sorted(aliases_of.get(str(mv.version), []))),
                created=pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC"),
                threshold=float(tags[TAG_THRESHOLD]) if TAG_THRESHOLD in tags else None,
                tags=tags,
            )
        )
    return rows


def load_reference_profile(settings: Settings, model: RegisteredModel) -> ReferenceProfile:
    """The profile logged with ``model``'s training run (raises :class:`ProfileError`)."""
    configure_mlflow(settings)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=model.run_id,
                artifact_path=PROFILE_ARTIFACT,
                dst_path=tmp,
                tracking_uri=settings.effective_mlflow_tracking_uri,
            )
        except (MlflowException, OSError) as exc:
            raise ProfileError(
                f"model {model.name} v{model.version} has no {PROFILE_ARTIFACT}: {exc}"
            ) from exc
        return ReferenceProfile.from_dict(json.loads(Path(local).read_text()))
