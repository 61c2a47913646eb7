"""Edge mode: the production model as an ONNX file a phone can run offline.

- :mod:`~fatigue_guard.edge.compact`: a forest that fits the edge budget when production does not.
- :mod:`~fatigue_guard.edge.manifest`: the manifest describing one ONNX file, read by the app.
- :mod:`~fatigue_guard.edge.bundle`: the published bundle in the blob store.

The ONNX export itself is shared with server inference: :mod:`fatigue_guard.model.onnx_export`.
"""

from fatigue_guard.edge.compact import EdgeBudgetError, EdgeModel, build_edge_model
from fatigue_guard.edge.manifest import EdgeManifest, build_manifest

__all__ = [
    "EdgeBudgetError",
    "EdgeManifest",
    "EdgeModel",
    "build_edge_model",
    "build_manifest",
]
