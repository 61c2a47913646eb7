"""Decision thresholds by model version, for predictions made elsewhere (edge sync).

An edge event names the model version that produced it. The threshold it was decided with is
the one in that version's edge manifest (a compact edge forest has its own threshold), else the
one registered with the version. Versions are immutable, so a hit is cached forever.
"""

from __future__ import annotations

import logging
import threading

from fatigue_guard.config import Settings
from fatigue_guard.serving.model_slot import ModelSlot
from fatigue_guard.storage.blob.stores import BlobStore

log = logging.getLogger(__name__)


class VersionThresholds:
    def __init__(self, settings: Settings, models: ModelSlot) -> None:
        self._settings = settings
        self._models = models
        self._known: dict[str, float] = {}
        self._lock = threading.Lock()

    def threshold_for(self, version: str, blobs: BlobStore | None = None) -> float | None:
        if version in self._known:
            return self._known[version]
        threshold = self._from_edge_manifest(version, blobs)
        if threshold is None:
            threshold = self._from_registry(version)
        if threshold is not None:
            with self._lock:
                self._known[version] = threshold
        return threshold

    def _from_edge_manifest(self, version: str, blobs: BlobStore | None) -> float | None:
        from fatigue_guard.edge.bundle import has_bundle, read_manifest

        if blobs is None:
            return None
        try:
            if has_bundle(blobs, version):
                return float(read_manifest(blobs, version).threshold)
        except Exception as exc:  # unreadable manifest: fall back to the registry
            log.info("edge manifest for version %s unreadable: %s", version, type(exc).__name__)
        return None

    def _from_registry(self, version: str) -> float | None:
        current = self._models.current
        if current is not None and current.version == version:
            return current.threshold
        from fatigue_guard.registry import get_model_version

        try:
            return float(get_model_version(self._settings, version).threshold)
        except Exception as exc:  # unknown version or registry down: the event is rejected
            log.info("no threshold for model version %s: %s", version, type(exc).__name__)
            return None
