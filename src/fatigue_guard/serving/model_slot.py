"""The served model and the one slot that holds it.

A request reads :attr:`ModelSlot.current` once and uses that object to the end, so swapping the
slot (a single reference assignment, atomic under the GIL) never changes the model under a request
that is already running: in-flight requests finish on the model they started with.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from fatigue_guard.config import Settings

log = logging.getLogger(__name__)


class Predictor(Protocol):
    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LoadedModel:
    """A model version ready to answer: predictor plus the threshold it was validated with."""

    name: str
    version: str
    threshold: float
    features_version: int
    predictor: Predictor
    runtime: str = "onnx"
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Positive-class probabilities for a float32 matrix in contract order."""
        return np.asarray(self.predictor.predict_proba(rows), dtype="float64")


class NoServableModel(RuntimeError):
    """No production model exists yet (train one first) or none could be loaded."""


class ModelSlot:
    """Holds the current model; loads new ones beside it and swaps atomically."""

    def __init__(self) -> None:
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()  # serialises loads, never taken on the request path
        self.last_error: str | None = None

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        previous, self._current = self._current, model
        self.last_error = None
        return previous

    def load(self, settings: Settings, alias: str = "production") -> LoadedModel:
        """Load the version behind ``alias`` and swap it in unless it is already served."""
        with self._lock:
            try:
                model = load_registered_model(settings, alias, current=self._current)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            if self._current is None or self._current.version != model.version:
                self.swap(model)
                log.info("serving model %s version %s", model.name, model.version)
            return self._current  # type: ignore[return-value]


def load_registered_model(
    settings: Settings, alias: str = "production", *, current: LoadedModel | None = None
) -> LoadedModel:
    """Build a :class:`LoadedModel` from the registry, preferring the ONNX export for speed."""
    from fatigue_guard.registry import (
        get_model_by_alias,
        load_onnx_bytes,
        load_pipeline,
    )
    from fatigue_guard.serving.inference import OnnxPredictor, SklearnPredictor

    registered = get_model_by_alias(settings, alias)
    if registered is None:
        raise NoServableModel(
            f"no model has the alias {alias!r} in {settings.registered_model_name!r}: "
            "run `fatigue-guard train --data PATH` first"
        )
    if current is not None and current.version == registered.version:
        return current
    onnx_bytes = load_onnx_bytes(settings, registered)
    predictor: Predictor
    if onnx_bytes:
        predictor, runtime = OnnxPredictor(onnx_bytes), "onnx"
    else:
        predictor, runtime = SklearnPredictor(load_pipeline(settings, registered)), "sklearn"
    warm_up = getattr(predictor, "warm_up", None)
    if warm_up is not None:
        warm_up()
    return LoadedModel(
        name=registered.name,
        version=str(registered.version),
        threshold=float(registered.threshold),
        features_version=int(registered.features_version),
        predictor=predictor,
        runtime=runtime,
    )
