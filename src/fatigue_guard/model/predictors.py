"""Predictors: feature matrix in, P(fatigue) out, as fast as the request path needs.

:class:`OnnxPredictor` is the fast path: ONNX Runtime on one intra-op thread,
about 0.04 ms per row for a 200-tree forest against about 6 ms for scikit-learn. One thread because
API workers are scaled by processes, and a thread pool per worker only adds contention on a small
machine (and for one row there is nothing to parallelise). :class:`SklearnPredictor` is the
fallback for model versions without an ONNX artifact. Both take float32 ``(n, n_features)`` in
contract order with NaN = missing, and return the positive-class probability, shape ``(n,)``.

Only numpy and onnxruntime are imported here: no pandas on the request path.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Protocol, runtime_checkable

import numpy as np
import onnxruntime as ort

from fatigue_guard.contract.features import FEATURE_NAMES

ONNX_INPUT_NAME = "features"  # the layout of fatigue_guard.model.onnx_export (not imported:
ONNX_OUTPUT_NAME = "probabilities"  # that module pulls in skl2onnx, which serving never needs)
_WARM_UP_CALLS = 20


@runtime_checkable
class Predictor(Protocol):
    """What the server and the edge client need from a model."""

    n_features: int

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(fatigue) per row of a float32 ``(n, n_features)`` matrix, shape ``(n,)``."""
        ...

    def warm_up(self) -> None:
        """Run a few predictions so the first real request does not pay one-off costs."""
        ...


class OnnxPredictor:
    """ONNX Runtime session for a fatigue-guard ONNX export, one thread, sequential."""

    def __init__(self, model_bytes: bytes) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
        inputs = self._session.get_inputs()
        outputs = [o.name for o in self._session.get_outputs()]
        if len(inputs) != 1:
            raise ValueError(f"expected one model input, got {[i.name for i in inputs]}")
        # Prefer the names of our exporter; accept any single-input model with 2-column probs.
        self._input_name = inputs[0].name
        self._output_name = ONNX_OUTPUT_NAME if ONNX_OUTPUT_NAME in outputs else outputs[-1]
        self._outputs = [self._output_name]  # pre-built: the list is reused on every call
        width = inputs[0].shape[1] if len(inputs[0].shape) == 2 else None
        self.n_features = int(width) if isinstance(width, int) else len(FEATURE_NAMES)
        self.metadata: dict[str, str] = dict(
            self._session.get_modelmeta().custom_metadata_map or {}
        )
        self._positive_column = int(self.metadata.get("positive_class_column", "1"))
        names = self.metadata.get("feature_names")
        # A file exported for another contract would read our columns as different features.
        if names is not None and tuple(json.loads(names)) != FEATURE_NAMES:
            raise ValueError("ONNX model was exported for another feature contract")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(fatigue) per row; ``X`` is converted to C-contiguous float32 only if it is not."""
        X = np.ascontiguousarray(X, dtype=np.float32)  # no copy when already right
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected shape (n, {self.n_features}), got {X.shape}")
        return self._session.run(self._outputs, {self._input_name: X})[0][:, self._positive_column]

    def predict_one(self, row: np.ndarray) -> float:
        """P(fatigue) for one float32 vector of length ``n_features`` (no validation: hot path)."""
        X = row.reshape(1, -1)
        return float(
            self._session.run(self._outputs, {self._input_name: X})[0][0, self._positive_column]
        )

    def warm_up(self) -> None:
        row = np.zeros((1, self.n_features), dtype=np.float32)
        batch = np.full((64, self.n_features), np.nan, dtype=np.float32)
        for _ in range(_WARM_UP_CALLS):
            self.predict_proba(row)
        self.predict_proba(batch)


class SklearnPredictor:
    """The fitted scikit-learn pipeline behind the same interface (fallback, reference).

    The forest is run with ``n_jobs=1`` on a shallow copy (the caller's object is untouched):
    joblib dispatch makes a single row about 4x slower with ``n_jobs=-1``.
    """

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = _single_threaded(pipeline)
        self.n_features = int(getattr(pipeline, "n_features_in_", len(FEATURE_NAMES)))
        classes = [int(c) for c in pipeline.classes_]
        self._positive_column = classes.index(1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected shape (n, {self.n_features}), got {X.shape}")
        return self._pipeline.predict_proba(X)[:, self._positive_column]

    def warm_up(self) -> None:
        self.predict_proba(np.zeros((1, self.n_features), dtype=np.float32))


def _single_threaded(pipeline: Any) -> Any:
    """A shallow copy of ``pipeline`` whose steps have ``n_jobs=1`` (fitted trees are shared)."""
    steps = getattr(pipeline, "steps", None)
    if steps is None:
        return _with_one_job(pipeline)
    clone = copy.copy(pipeline)
    clone.steps = [(name, _with_one_job(step)) for name, step in steps]
    return clone


def _with_one_job(estimator: Any) -> Any:
    if getattr(estimator, "n_jobs", 1) in (1, None):
        return estimator
    single = copy.copy(estimator)
    single.n_jobs = 1
    return single
