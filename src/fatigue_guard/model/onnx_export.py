"""Export the production pipeline to ONNX: one exporter for server inference and the edge file.

Layout of the exported model (the mobile app and :class:`~fatigue_guard.model.predictors.
OnnxPredictor` code against it):

- input ``features``: float32 ``[N, n_features]`` in contract order, NaN = missing;
- output ``probabilities``: float32 ``[N, 2]``, column 1 = P(fatigue). The converter's ``label``
  output is removed on purpose: it is an argmax (threshold 0.5), while alerts use the model's own
  threshold (``probability >= threshold``, shipped in the manifest);
- ``metadata_props``: model name, ``features_version``, ordered feature names (JSON), opsets.

Opsets are pinned (:data:`PINNED_OPSETS`) so that a skl2onnx upgrade cannot silently change what
phones must run. The graph is ``Imputer`` + ``TreeEnsembleClassifier`` only: both are ``ai.onnx.ml``
operators, and skl2onnx emits ``TreeEnsembleClassifier`` version 1 for float32 input whatever
ml opset it is allowed, so ORT runs the same kernel under every pin (measured on 2 cores, 200 trees
of depth 14: single-row p50 0.03-0.06 ms for ml opset 1, 3 and 5 and main opset 15, 17 and 21 alike,
differences within run-to-run noise). We therefore pin the *lowest* pair that
carries everything we need: main opset 17 (ONNX 1.12, ORT >= 1.13, so older mobile runtimes load
it) and ml opset 3 (allows the double-precision tree attributes should we ever export float64).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import onnx
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION

PINNED_OPSETS: Final[dict[str, int]] = {"": 17, "ai.onnx.ml": 3}
INPUT_NAME: Final[str] = "features"
OUTPUT_NAME: Final[str] = "probabilities"
DEFAULT_MODEL_NAME: Final[str] = "fatigue-rf"

# metadata_props keys; the manifest builder and the predictor read them back.
META_MODEL_NAME: Final[str] = "model_name"
META_FEATURES_VERSION: Final[str] = "features_version"
META_FEATURE_NAMES: Final[str] = "feature_names"
META_OPSETS: Final[str] = "opsets"
META_POSITIVE_COLUMN: Final[str] = "positive_class_column"

# Tree attributes ORT ignores (hit rates) or that only repeat their default (all-false
# "missing tracks true": the imputer runs first, so the trees never see NaN). Dropping them
# shrinks the file by about a fifth with bit-identical outputs; the parity tests prove it.
_DROPPABLE_TREE_ATTRIBUTES: Final[frozenset[str]] = frozenset(
    {"nodes_hitrates", "nodes_missing_value_tracks_true"}
)
_TREE_OPS: Final[frozenset[str]] = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor"})

# Max |ONNX - sklearn| accepted by the post-export self-check: the same bound as the golden-vector
# check a version must pass before it may serve (serving.model_check.GOLDEN_TOLERANCE), so an
# export that passes here is not refused there for parity.
EXPORT_TOLERANCE: Final[float] = 1e-5
_SELF_CHECK_ROWS: Final[int] = 512


class ExportError(ValueError):
    """The pipeline cannot be exported faithfully (wrong inputs, classes or converter output)."""


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an exported file says about itself (from its ``metadata_props``)."""

    model_name: str
    features_version: int
    feature_names: tuple[str, ...]
    opsets: dict[str, int]
    positive_class_column: int


def export_onnx(
    pipeline: Pipeline, *, name: str = DEFAULT_MODEL_NAME, self_check: bool = True
) -> bytes:
    """Serialized ONNX model of the whole fitted ``pipeline`` (imputer + forest).

    Refuses pipelines that do not take exactly the contract's features, whose classes are not
    binary {0, 1} / {False, True}, or whose forest would see NaN (skl2onnx does not reproduce
    scikit-learn's native NaN routing in trees). With ``self_check`` (default), the exported
    model is run on contract-range probe vectors with nulls and must match ``predict_proba``
    within :data:`EXPORT_TOLERANCE`: a converter regression fails here, not on a phone.
    """
    _check_exportable(pipeline)
    from skl2onnx import to_onnx  # heavy import (~1 s): only the exporting process pays it
    from skl2onnx.common.data_types import FloatTensorType

    forest = pipeline.steps[-1][1]
    model = to_onnx(
        pipeline,
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={id(forest): {"zipmap": False}},
        target_opset=dict(PINNED_OPSETS),
    )
    _keep_only_probabilities(model)
    _drop_default_tree_attributes(model)
    _dedupe_opset_imports(model)
    _check_opsets(model)
    model.doc_string = (
        f"{name}: P(fatigue) = {OUTPUT_NAME}[:, 1] for float32 {INPUT_NAME} in contract order "
        f"(features_version {FEATURES_VERSION}), NaN = missing; alert = probability >= threshold."
    )
    onnx.helper.set_model_props(
        model,
        {
            META_MODEL_NAME: name,
            META_FEATURES_VERSION: str(FEATURES_VERSION),
            META_FEATURE_NAMES: json.dumps(list(FEATURE_NAMES)),
            META_OPSETS: json.dumps(_opset_map(model), sort_keys=True),
            META_POSITIVE_COLUMN: "1",
        },
    )
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    if self_check:
        _self_check(pipeline, data)
    return data


def read_model_info(onnx_bytes: bytes) -> OnnxModelInfo:
    """Parse the metadata :func:`export_onnx` embedded; :class:`ExportError` if absent."""
    model = onnx.load_model_from_string(onnx_bytes)
    props = {p.key: p.value for p in model.metadata_props}
    try:
        return OnnxModelInfo(
            model_name=props[META_MODEL_NAME],
            features_version=int(props[META_FEATURES_VERSION]),
            feature_names=tuple(json.loads(props[META_FEATURE_NAMES])),
            opsets={k: int(v) for k, v in json.loads(props[META_OPSETS]).items()},
            positive_class_column=int(props[META_POSITIVE_COLUMN]),
        )
    except (KeyError, ValueError) as exc:
        raise ExportError(f"not a fatigue-guard ONNX export (metadata: {exc})") from exc


def _check_exportable(pipeline: Pipeline) -> None:
    if not isinstance(pipeline, Pipeline):
        raise ExportError(f"expected a fitted sklearn Pipeline, got {type(pipeline).__name__}")
    n_in = getattr(pipeline, "n_features_in_", None)
    if n_in is None:
        raise ExportError("pipeline is not fitted (no n_features_in_)")
    if n_in != len(FEATURE_NAMES):
        raise ExportError(
            f"pipeline takes {n_in} features, contract v{FEATURES_VERSION} has "
            f"{len(FEATURE_NAMES)}: retrain on the current contract before exporting"
        )
    names = getattr(pipeline, "feature_names_in_", None)
    if names is not None and tuple(names) != FEATURE_NAMES:
        raise ExportError("pipeline was fitted on columns in another order than the contract")
    classes = [int(c) for c in getattr(pipeline, "classes_", [])]
    if classes != [0, 1]:
        raise ExportError(f"expected binary classes [0, 1], got {classes}")
    if not any(isinstance(step, SimpleImputer) for _, step in pipeline.steps[:-1]):
        raise ExportError(
            "no SimpleImputer before the forest: skl2onnx does not reproduce native NaN routing "
            "in trees, so edge and server would disagree on vectors with nulls"
        )


def _keep_only_probabilities(model: onnx.ModelProto) -> None:
    outputs = [o for o in model.graph.output if o.name == OUTPUT_NAME]
    if len(outputs) != 1:
        found = [o.name for o in model.graph.output]
        raise ExportError(f"converter produced outputs {found}, expected {OUTPUT_NAME!r}")
    del model.graph.output[:]
    model.graph.output.extend(outputs)


def _drop_default_tree_attributes(model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        if node.op_type not in _TREE_OPS:
            continue
        keep = [a for a in node.attribute if not _is_droppable(a)]
        del node.attribute[:]
        node.attribute.extend(keep)


def _is_droppable(attribute: onnx.AttributeProto) -> bool:
    if attribute.name == "nodes_hitrates":
        return True  # ORT's tree kernels never read hit rates
    if attribute.name == "nodes_missing_value_tracks_true":
        return not any(attribute.ints)  # the default is all-false
    return False


def _dedupe_opset_imports(model: onnx.ModelProto) -> None:
    # skl2onnx 1.20 lists the default domain twice; keep one entry per domain.
    seen: dict[str, int] = {}
    for entry in model.opset_import:
        seen[entry.domain] = max(seen.get(entry.domain, 0), entry.version)
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in sorted(seen.items()))


def _opset_map(model: onnx.ModelProto) -> dict[str, int]:
    return {entry.domain: int(entry.version) for entry in model.opset_import}


def _check_opsets(model: onnx.ModelProto) -> None:
    used = _opset_map(model)
    too_new = {d: v for d, v in used.items() if v > PINNED_OPSETS.get(d, -1)}
    if too_new:
        raise ExportError(f"exported model needs opsets {too_new} beyond the pin {PINNED_OPSETS}")


def _self_check(pipeline: Pipeline, data: bytes) -> None:
    import onnxruntime as ort

    from fatigue_guard.model.vectors import contract_vectors

    probe = contract_vectors(_SELF_CHECK_ROWS, seed=20240607)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: probe})[0][:, 1]
    want = _positive_column(pipeline.predict_proba(probe), pipeline.classes_)
    diff = float(np.max(np.abs(got.astype(np.float64) - want)))
    if not diff <= EXPORT_TOLERANCE:
        raise ExportError(f"ONNX differs from scikit-learn by {diff:.2e} > {EXPORT_TOLERANCE}")


def _positive_column(proba: np.ndarray, classes: Any) -> np.ndarray:
    return proba[:, [int(c) for c in classes].index(1)]
