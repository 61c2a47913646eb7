"""The edge model respects the budget, says which kind it is, and reports its recall cost."""

from __future__ import annotations

import numpy as np
import pytest

from fatigue_guard.edge.compact import EdgeBudgetError, build_edge_model
from fatigue_guard.model.onnx_export import export_onnx
from fatigue_guard.model.predictors import OnnxPredictor, SklearnPredictor
from fatigue_guard.model.threshold import recall_at_precision, select_threshold

FLOOR = 0.75


@pytest.fixture(scope="module")
def full_onnx(uniform_pipeline) -> bytes:
    return export_onnx(uniform_pipeline)


@pytest.fixture(scope="module")
def production_threshold(uniform_split, uniform_pipeline) -> float:
    scores = SklearnPredictor(uniform_pipeline).predict_proba(uniform_split.X_val)
    return select_threshold(uniform_split.y_val, scores, FLOOR).threshold


def build(split, pipeline, full_onnx: bytes, threshold: float, max_bytes: int, **kw):
    return build_edge_model(
        pipeline,
        split.X_train,
        split.y_train,
        split.X_val,
        split.y_val,
        threshold=threshold,
        precision_floor=FLOOR,
        max_bytes=max_bytes,
        full_onnx=full_onnx,
        latency_calls=500,
        **kw,
    )


def test_production_model_is_shipped_as_is_when_it_fits(
    uniform_split, uniform_pipeline, full_onnx, production_threshold
) -> None:
    edge = build(uniform_split, uniform_pipeline, full_onnx, production_threshold, 10**9)
    assert edge.kind == "full"
    assert edge.onnx_bytes == full_onnx
    assert edge.threshold == production_threshold  # edge alerts exactly like the server
    assert edge.metrics["recall_at_floor_cost"] == 0.0
    assert edge.metrics["edge_p99_ms"] <= 1.0


def test_compact_forest_fits_the_byte_budget_and_reports_its_recall_cost(
    uniform_split, uniform_pipeline, full_onnx, production_threshold
) -> None:
    budget = len(full_onnx) // 2
    edge = build(
        uniform_split, uniform_pipeline, full_onnx, production_threshold, budget, depths=(6,)
    )
    assert edge.kind == "compact"
    assert edge.size_bytes <= budget < len(full_onnx)
    assert edge.metrics["edge_size_bytes"] == edge.size_bytes
    assert edge.metrics["edge_p99_ms"] <= 1.0

    # Recall at the floor of both models, measured like-for-like on the validation rows.
    X_val, y_val = uniform_split.X_val, uniform_split.y_val
    full_scores = OnnxPredictor(full_onnx).predict_proba(X_val)
    edge_scores = OnnxPredictor(edge.onnx_bytes).predict_proba(X_val)
    assert edge.metrics["full_recall_at_floor"] == recall_at_precision(y_val, full_scores, FLOOR)
    assert edge.metrics["edge_recall_at_floor"] == recall_at_precision(y_val, edge_scores, FLOOR)
    assert edge.metrics["recall_at_floor_cost"] == pytest.approx(
        edge.metrics["full_recall_at_floor"] - edge.metrics["edge_recall_at_floor"]
    )
    assert edge.metrics["edge_recall_at_floor"] > 0.5  # a usable model, not an empty one

    # Its own threshold, chosen on the validation rows by the training rule.
    assert edge.threshold == select_threshold(y_val, edge_scores, FLOOR).threshold
    assert {c.label for c in edge.candidates} >= {"production", "production prefix", "depth 6"}


def test_compact_forest_matches_its_own_sklearn_form(
    uniform_split, uniform_pipeline, full_onnx, production_threshold
) -> None:
    edge = build(
        uniform_split,
        uniform_pipeline,
        full_onnx,
        production_threshold,
        len(full_onnx) // 2,
        depths=(),
    )
    X = uniform_split.X_parity
    onnx_p = OnnxPredictor(edge.onnx_bytes).predict_proba(X)
    sk_p = SklearnPredictor(edge.pipeline).predict_proba(X)
    assert np.abs(onnx_p - sk_p).max() <= 1e-5
    near = np.abs(sk_p - edge.threshold) <= 1e-6
    assert not near.any()
    assert np.array_equal(onnx_p >= edge.threshold, sk_p >= edge.threshold)
    assert len(edge.pipeline.steps[-1][1].estimators_) == edge.n_estimators


def test_refuses_when_nothing_fits(
    uniform_split, uniform_pipeline, full_onnx, production_threshold
) -> None:
    with pytest.raises(EdgeBudgetError, match="no forest fits"):
        build(uniform_split, uniform_pipeline, full_onnx, production_threshold, 20_000, depths=())
