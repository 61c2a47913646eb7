"""The edge model: the production forest if it fits the phone budget, else a compact forest.

Budget: file <= 5 MB, single-vector inference <= 1 ms p99 on one thread
(measured here as thread CPU time, see :func:`fatigue_guard.edge.latency.time_calls`). A
production forest (150-200 trees of depth 14) exports to 10-20 MB, so the usual outcome is a
compact forest. How it is built, and why:

- **Retrain, not distil.** Candidates are the production pipeline's own hyperparameters (class
  weights, min leaf size, max features, seed) with a smaller ``max_depth``, refitted on the same
  training data. Distilling on the big forest's probabilities of the *training* rows adds
  nothing: a random forest's in-bag probabilities mostly replay the labels it was fitted on, so
  the soft targets are nearly the hard ones (distillation pays off with unlabeled extra data,
  which we do not have here).
- **Fewer trees by prefix.** Forest trees are i.i.d., so the first ``k`` trees of a fitted forest
  are a ``k``-tree forest: for each depth we fit once and take the longest prefix that fits the
  byte budget (file size is almost linear in the node count). The production forest itself
  (no refit) is the first candidate.
- **Chosen on validation data.** Each candidate's recall at the precision floor is measured on
  the validation rows; the best that meets both budgets wins, and its alert threshold is chosen
  on the same rows by the training module's rule (max recall s.t. precision >= floor, with its
  confidence margin). The full model's recall at the floor is reported beside it.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from fatigue_guard.edge.latency import time_calls
from fatigue_guard.model.onnx_export import DEFAULT_MODEL_NAME, export_onnx
from fatigue_guard.model.predictors import OnnxPredictor
from fatigue_guard.model.threshold import (
    NoThresholdMeetsFloor,
    recall_at_precision,
    select_threshold,
)

EDGE_MAX_BYTES: Final[int] = 5_000_000
EDGE_MAX_P99_MS: Final[float] = 1.0
DEFAULT_PRECISION_FLOOR: Final[float] = 0.75
# Aim a little under the byte budget when sizing a prefix, so the estimate rarely needs a retry.
_SIZE_HEADROOM: Final[float] = 0.98
# Fewer trees than this give jumpy probabilities (few distinct values, coarse thresholds).
MIN_TREES: Final[int] = 20

EdgeKind = Literal["full", "compact"]
ThresholdPolicy = Callable[[np.ndarray, np.ndarray, float], float]
"""``(y_true, scores, precision_floor) -> threshold``; raise if no threshold meets the floor."""


def training_threshold_policy(y_true: np.ndarray, scores: np.ndarray, floor: float) -> float:
    """The production rule, reused from :mod:`fatigue_guard.model.threshold`."""
    return select_threshold(y_true, scores, floor).threshold


class EdgeBudgetError(RuntimeError):
    """No candidate fits the edge budget while meeting the precision floor."""


@dataclass(frozen=True)
class Candidate:
    """One forest that was tried, with what it measured (kept for the report)."""

    label: str
    n_estimators: int
    max_depth: int | None
    size_bytes: int
    p99_ms: float
    recall_at_floor: float
    within_budget: bool


@dataclass(frozen=True)
class EdgeModel:
    """The ONNX file to ship, which kind it is, its alert threshold and the evidence.

    ``pipeline`` is the scikit-learn form of the shipped forest (the production pipeline itself
    for ``kind="full"``): the reference for parity tests and for logging the model to MLflow.
    """

    onnx_bytes: bytes
    pipeline: Pipeline
    kind: EdgeKind
    threshold: float
    metrics: dict[str, float]
    n_estimators: int
    max_depth: int | None
    candidates: tuple[Candidate, ...] = field(default=())

    @property
    def size_bytes(self) -> int:
        return len(self.onnx_bytes)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.onnx_bytes).hexdigest()


def build_edge_model(
    pipeline: Pipeline,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    threshold: float,
    precision_floor: float = DEFAULT_PRECISION_FLOOR,
    threshold_policy: ThresholdPolicy = training_threshold_policy,
    max_bytes: int = EDGE_MAX_BYTES,
    max_p99_ms: float = EDGE_MAX_P99_MS,
    depths: Sequence[int] | None = None,
    full_onnx: bytes | None = None,
    name: str = DEFAULT_MODEL_NAME,
    latency_calls: int = 2000,
) -> EdgeModel:
    """The production model if it meets the edge budget, else the best compact forest.

    ``threshold`` is the production model's own alert threshold (used as-is for ``kind="full"``
    so that edge and server alert alike). ``full_onnx`` skips re-exporting the production model
    when its export is already at hand. ``depths`` overrides the compact depths refitted (default:
    4 and 8 levels shallower than production, never below 4; ``()`` = prefixes of the
    production forest only, no refit).
    """
    y_val = np.asarray(y_val).astype(int)
    full_bytes = full_onnx if full_onnx is not None else export_onnx(pipeline, name=name)
    full_scores = OnnxPredictor(full_bytes).predict_proba(X_val)
    full_p99 = _p99(full_bytes, X_val, latency_calls)
    full_recall = recall_at_precision(y_val, full_scores, precision_floor)
    metrics: dict[str, float] = {
        "precision_floor": precision_floor,
        "full_size_bytes": float(len(full_bytes)),
        "full_p99_ms": full_p99,
        "full_recall_at_floor": full_recall,
        **_at_threshold("full", y_val, full_scores, threshold),
    }
    forest = pipeline.steps[-1][1]
    full_depth = _depth(forest)
    full_candidate = Candidate(
        "production",
        len(forest.estimators_),
        full_depth,
        len(full_bytes),
        full_p99,
        full_recall,
        len(full_bytes) <= max_bytes and full_p99 <= max_p99_ms,
    )
    if full_candidate.within_budget:
        return _edge_model(
            full_bytes, pipeline, "full", threshold, metrics, full_candidate, [full_candidate]
        )

    bytes_per_node = len(full_bytes) / _node_count(forest.estimators_)
    fitted: list[tuple[str, Pipeline]] = [("production prefix", pipeline)]
    for depth in depths if depths is not None else _default_depths(full_depth):
        refit = clone(pipeline).set_params(**{f"{pipeline.steps[-1][0]}__max_depth": depth})
        fitted.append((f"depth {depth}", refit.fit(X_train, y_train)))

    tried: list[Candidate] = [full_candidate]
    best: tuple[Candidate, bytes, Pipeline] | None = None
    for label, model in fitted:
        found = _largest_prefix_within(model, max_bytes, bytes_per_node, name)
        if found is None:
            continue
        data, small = found
        scores = OnnxPredictor(data).predict_proba(X_val)
        p99 = _p99(data, X_val, latency_calls)
        candidate = Candidate(
            label,
            len(small.steps[-1][1].estimators_),
            _depth(small.steps[-1][1]),
            len(data),
            p99,
            recall_at_precision(y_val, scores, precision_floor),
            p99 <= max_p99_ms,
        )
        tried.append(candidate)
        if candidate.within_budget and (best is None or _better(candidate, best[0])):
            best = (candidate, data, small)
    if best is None:
        raise EdgeBudgetError(f"no forest fits {max_bytes} bytes and {max_p99_ms} ms: {tried}")

    chosen, data, small = best
    scores = OnnxPredictor(data).predict_proba(X_val)
    try:
        edge_threshold = float(threshold_policy(y_val, scores, precision_floor))
    except NoThresholdMeetsFloor as exc:
        raise EdgeBudgetError(f"compact forest {chosen.label}: {exc}") from exc
    metrics.update(_at_threshold("edge", y_val, scores, edge_threshold))
    return _edge_model(data, small, "compact", edge_threshold, metrics, chosen, tried)


def _edge_model(
    data: bytes,
    pipeline: Pipeline,
    kind: EdgeKind,
    threshold: float,
    metrics: dict[str, float],
    chosen: Candidate,
    tried: list[Candidate],
) -> EdgeModel:
    if kind == "full":
        full = {k: v for k, v in metrics.items() if k.startswith("full_")}
        metrics.update({k.replace("full_", "edge_", 1): v for k, v in full.items()})
    metrics.update(
        {
            "edge_size_bytes": float(len(data)),
            "edge_p99_ms": chosen.p99_ms,
            "edge_recall_at_floor": chosen.recall_at_floor,
            "edge_n_estimators": float(chosen.n_estimators),
            "edge_max_depth": float(chosen.max_depth or 0),
            "recall_at_floor_cost": metrics["full_recall_at_floor"] - chosen.recall_at_floor,
        }
    )
    return EdgeModel(
        onnx_bytes=data,
        pipeline=pipeline,
        kind=kind,
        threshold=threshold,
        metrics=metrics,
        n_estimators=chosen.n_estimators,
        max_depth=chosen.max_depth,
        candidates=tuple(tried),
    )


def _at_threshold(
    prefix: str, y_true: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    alerts = scores >= threshold
    tp = int(np.sum(alerts & (y_true == 1)))
    return {
        f"{prefix}_threshold": float(threshold),
        f"{prefix}_precision_at_threshold": tp / max(int(alerts.sum()), 1),
        f"{prefix}_recall_at_threshold": tp / max(int(y_true.sum()), 1),
        f"{prefix}_alert_rate": float(alerts.mean()) if len(alerts) else 0.0,
    }


def _better(a: Candidate, b: Candidate) -> bool:
    # Recall first; on a tie the smaller file (faster download, less phone storage).
    return (a.recall_at_floor, -a.size_bytes) > (b.recall_at_floor, -b.size_bytes)


def _p99(data: bytes, X: np.ndarray, calls: int) -> float:
    """Single-vector p99 in ms of CPU time on one thread: the model's cost, not the neighbours'.

    Median of three runs on top of that, so one burst cannot disqualify a forest.
    """
    predictor = OnnxPredictor(data)
    rows = np.ascontiguousarray(X[: min(len(X), 1000)], dtype=np.float32)
    runs = [
        time_calls(predictor.predict_proba, rows, calls=calls, clock="cpu").p99_ms for _ in range(3)
    ]
    return float(np.median(runs))


def _largest_prefix_within(
    model: Pipeline, max_bytes: int, bytes_per_node: float, name: str
) -> tuple[bytes, Pipeline] | None:
    """Export the longest tree prefix of ``model`` under ``max_bytes`` (None if < MIN_TREES)."""
    trees = model.steps[-1][1].estimators_
    cumulative = np.cumsum([t.tree_.node_count for t in trees])
    k = int(np.searchsorted(cumulative * bytes_per_node, max_bytes * _SIZE_HEADROOM, "right"))
    for _ in range(4):  # the size estimate is close; a retry or two absorbs its error
        k = min(k, len(trees))
        if k < MIN_TREES:
            return None
        small = _prefix(model, k)
        data = export_onnx(small, name=name)
        if len(data) <= max_bytes:
            return data, small
        k = int(k * max_bytes * _SIZE_HEADROOM / len(data))
    return None


def _prefix(model: Pipeline, k: int) -> Pipeline:
    """``model`` with only its first ``k`` trees; fitted trees are shared, not copied."""
    step_name, forest = model.steps[-1]
    if k == len(forest.estimators_):
        return model
    small = copy.copy(forest)
    small.estimators_ = forest.estimators_[:k]
    small.n_estimators = k
    trimmed = copy.copy(model)
    trimmed.steps = [*model.steps[:-1], (step_name, small)]
    return trimmed


def _node_count(trees: Sequence[Any]) -> int:
    return int(sum(t.tree_.node_count for t in trees))


def _depth(forest: Any) -> int:
    return int(max(t.get_depth() for t in forest.estimators_))


def _default_depths(full_depth: int) -> list[int]:
    # Two refits, not more: each costs a full forest fit (about 25 s for 200 trees on 34k rows
    # on 2 shared cores), and neighbouring depths measured within noise of each other.
    return [d for d in (full_depth - 4, full_depth - 8) if d >= 4]
