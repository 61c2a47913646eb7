"""Predictors: same interface, same answers, fast path consistent with the batch path."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.model.onnx_export import export_onnx
from fatigue_guard.model.predictors import OnnxPredictor, Predictor, SklearnPredictor


@pytest.fixture(scope="module")
def onnx_predictor(uniform_pipeline) -> OnnxPredictor:
    predictor = OnnxPredictor(export_onnx(uniform_pipeline))
    predictor.warm_up()
    return predictor


def test_both_predictors_satisfy_the_protocol(onnx_predictor, uniform_pipeline) -> None:
    assert isinstance(onnx_predictor, Predictor)
    assert isinstance(SklearnPredictor(uniform_pipeline), Predictor)


def test_shapes_and_single_row_paths_agree(onnx_predictor, uniform_split) -> None:
    X = uniform_split.X_parity[:100]
    batch = onnx_predictor.predict_proba(X)
    assert batch.shape == (100,)
    rows = np.array([onnx_predictor.predict_proba(X[i : i + 1])[0] for i in range(100)])
    ones = np.array([onnx_predictor.predict_one(X[i]) for i in range(100)])
    np.testing.assert_array_equal(rows, batch)
    np.testing.assert_array_equal(ones, batch)
    # float64 input is accepted (converted), not silently misread.
    np.testing.assert_array_equal(onnx_predictor.predict_proba(X.astype(np.float64)), batch)


def test_wrong_width_is_refused(onnx_predictor, uniform_pipeline) -> None:
    X = np.zeros((1, len(FEATURE_NAMES) - 1), dtype=np.float32)
    with pytest.raises(ValueError, match="expected shape"):
        onnx_predictor.predict_proba(X)
    with pytest.raises(ValueError, match="expected shape"):
        SklearnPredictor(uniform_pipeline).predict_proba(X)


def test_sklearn_predictor_leaves_the_callers_pipeline_alone(uniform_pipeline) -> None:
    forest = uniform_pipeline.steps[-1][1]
    assert forest.n_jobs == 2
    predictor = SklearnPredictor(uniform_pipeline)
    assert forest.n_jobs == 2  # not mutated
    assert predictor._pipeline.steps[-1][1].n_jobs == 1
    assert predictor._pipeline.steps[-1][1].estimators_ is forest.estimators_  # shared, not copied


def test_refuses_onnx_exported_for_another_contract(uniform_pipeline) -> None:
    model = onnx.load_model_from_string(export_onnx(uniform_pipeline))
    for prop in model.metadata_props:
        if prop.key == "feature_names":
            prop.value = json.dumps(list(reversed(FEATURE_NAMES)))
    with pytest.raises(ValueError, match="another feature contract"):
        OnnxPredictor(model.SerializeToString())
