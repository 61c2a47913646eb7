"""Register a trained candidate: the step between a training run and the gate.

Training logs a candidate and stops there; registering it moves aliases, which only the
lifecycle may do. The first version ever registered becomes ``production`` (there is nothing to
compare it with); every later one becomes ``staging`` and waits for
:func:`~fatigue_guard.lifecycle.gate.promote`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from fatigue_guard.config import Settings
from fatigue_guard.lifecycle.bus import MessageBus
from fatigue_guard.lifecycle.gate import make_initial_production
from fatigue_guard.registry.models import (
    PRODUCTION,
    STAGING,
    get_model_by_alias,
    model_from_version,
)
from fatigue_guard.registry.tracking import configure_mlflow
from fatigue_guard.training.train import TrainResult, train_model


def register_candidate(
    settings: Settings,
    result: TrainResult,
    *,
    actor: str,
    bus: MessageBus | None = None,
    retrain_run_id: int | None = None,
) -> TrainResult:
    """Register ``result``'s logged model; return it with ``registered`` and ``alias`` set."""
    mv = mlflow.register_model(
        result.model_uri, settings.registered_model_name, tags=result.version_tags
    )
    client = configure_mlflow(settings)
    model = model_from_version(client.get_model_version(mv.name, mv.version))
    if get_model_by_alias(settings, PRODUCTION) is None:
        make_initial_production(
            settings,
            model,
            actor=actor,
            reason="first registered version: nothing to compare with",
            bus=bus,
            retrain_run_id=retrain_run_id,
        )
        alias = PRODUCTION
    else:
        client.set_registered_model_alias(mv.name, STAGING, mv.version)
        alias = STAGING
    client.set_tag(result.run_id, "status", "registered")
    return dataclasses.replace(result, registered=model, alias=alias)


def train_and_register(
    settings: Settings,
    data: pd.DataFrame | Path,
    *,
    register: bool = True,
    actor: str = "train",
    progress: Any = None,
    bus: MessageBus | None = None,
    retrain_run_id: int | None = None,
    **train_kwargs: Any,
) -> TrainResult:
    """:func:`~fatigue_guard.training.train.train_model`, then (unless ``register=False``)
    :func:`register_candidate`: what ``fatigue-guard train`` and a retraining run do."""
    result = train_model(settings, data, progress=progress, **train_kwargs)
    if not register:
        return result
    if progress is not None:
        progress("registering the model version")
    return register_candidate(settings, result, actor=actor, bus=bus, retrain_run_id=retrain_run_id)
