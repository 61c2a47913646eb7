"""Edge mode: the production model as an ONNX file a phone can run offline (issue 7).

- :mod:`~fatigue_guard.edge.onnx_export`: pipeline -> ONNX bytes (shared with server inference).
- :mod:`~fatigue_guard.edge.compact`: a forest that fits the edge budget when production does not.
- :mod:`~fatigue_guard.edge.manifest`: the DESIGN §3 manifest describing one ONNX file.
- :mod:`~fatigue_guard.edge.vectors`: contract-range probe vectors (export check, tests).
"""

from fatigue_guard.edge.compact import EdgeBudgetError, EdgeModel, build_edge_model
from fatigue_guard.edge.manifest import EdgeManifest, build_manifest
from fatigue_guard.edge.onnx_export import (
    INPUT_NAME,
    OUTPUT_NAME,
    PINNED_OPSETS,
    ExportError,
    OnnxModelInfo,
    export_onnx,
    read_model_info,
)

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "PINNED_OPSETS",
    "EdgeBudgetError",
    "EdgeManifest",
    "EdgeModel",
    "ExportError",
    "OnnxModelInfo",
    "build_edge_model",
    "build_manifest",
    "export_onnx",
    "read_model_info",
]
