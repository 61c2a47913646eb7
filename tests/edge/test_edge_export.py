"""The exporter: refuses what it cannot convert faithfully, and labels what it produces."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION
from fatigue_guard.model.onnx_export import (
    INPUT_NAME,
    OUTPUT_NAME,
    PINNED_OPSETS,
    ExportError,
    export_onnx,
    read_model_info,
)
from fatigue_guard.model.pipeline import build_pipeline


def test_refuses_a_pipeline_with_another_feature_count(uniform_split) -> None:
    narrow = build_pipeline({"max_depth": 4}, n_estimators=5).fit(
        uniform_split.X_train[:, :-1], uniform_split.y_train
    )
    with pytest.raises(ExportError, match=r"takes 17 features, contract v1 has 18"):
        export_onnx(narrow)


def test_refuses_a_forest_that_would_see_nan_without_the_imputer(uniform_split) -> None:
    bare = Pipeline([("forest", RandomForestClassifier(n_estimators=5, max_depth=4))])
    bare.fit(uniform_split.X_train, uniform_split.y_train)
    with pytest.raises(ExportError, match="native NaN routing"):
        export_onnx(bare)


def test_refuses_non_binary_classes(uniform_split) -> None:
    three = build_pipeline({"max_depth": 4}, n_estimators=5).fit(
        uniform_split.X_train, uniform_split.y_train + (uniform_split.X_train[:, 0] > 8)
    )
    with pytest.raises(ExportError, match="binary classes"):
        export_onnx(three)


def test_metadata_carries_features_version_and_ordered_names(uniform_pipeline) -> None:
    data = export_onnx(uniform_pipeline, name="fatigue-rf-test")
    model = onnx.load_model_from_string(data)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["features_version"] == str(FEATURES_VERSION)
    assert json.loads(props["feature_names"]) == list(FEATURE_NAMES)
    assert props["model_name"] == "fatigue-rf-test"

    info = read_model_info(data)
    assert info.features_version == FEATURES_VERSION
    assert info.feature_names == FEATURE_NAMES
    assert info.positive_class_column == 1


def test_graph_layout_and_pinned_opsets(uniform_pipeline) -> None:
    model = onnx.load_model_from_string(export_onnx(uniform_pipeline))
    (inp,) = model.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == INPUT_NAME
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert not dims[0].dim_value and dims[1].dim_value == len(FEATURE_NAMES)  # [None, 18]
    # Only probabilities: the converter's argmax label would contradict our threshold.
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    assert out_dims[1].dim_value == 2
    imports = {o.domain: o.version for o in model.opset_import}
    assert len(imports) == len(model.opset_import)  # no duplicate domains
    assert all(v <= PINNED_OPSETS[d] for d, v in imports.items())
    assert imports[""] == PINNED_OPSETS[""]
    ops = {n.op_type for n in model.graph.node}
    assert ops == {"Imputer", "TreeEnsembleClassifier"}


def test_export_is_deterministic(uniform_pipeline) -> None:
    # Same model, same bytes: the sha256 / ETag only changes when the model does.
    assert export_onnx(uniform_pipeline) == export_onnx(uniform_pipeline)


def test_read_model_info_rejects_foreign_onnx(uniform_pipeline) -> None:
    model = onnx.load_model_from_string(export_onnx(uniform_pipeline))
    del model.metadata_props[:]
    with pytest.raises(ExportError, match="not a fatigue-guard ONNX export"):
        read_model_info(model.SerializeToString())


def test_exported_model_handles_all_missing_optionals(uniform_pipeline) -> None:
    from fatigue_guard.model.predictors import OnnxPredictor, SklearnPredictor

    X = np.full((4, len(FEATURE_NAMES)), np.nan, dtype=np.float32)
    X[:, [0, 1, 2, 4, 5]] = [[7.0, 0.9, 60.0, 16.0, 22.5]]  # required features only
    onnx_p = OnnxPredictor(export_onnx(uniform_pipeline)).predict_proba(X)
    np.testing.assert_allclose(
        onnx_p, SklearnPredictor(uniform_pipeline).predict_proba(X), atol=1e-6
    )
