"""Decision thresholds by model version, for predictions made elsewhere (edge sync).

An edge event names the model version that produced it. The threshold it was decided with is
the one in that version's edge manifest (a compact edge forest has its own threshold), else the
one registered with the version. Versions are immutable, so a hit is cached forever. A miss is
cached too, for ``MISS_TTL_S``: clients name versions freely, and each look costs a blob-store
read and a registry round trip, so the same made-up version must not buy them again and again.
A version published after a miss is found once its miss expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from fatigue_guard.config import Settings
from fatigue_guard.serving.model_slot import ModelSlot
from fatigue_guard.storage.blob.stores import BlobStore

log = logging.getLogger(__name__)

MISS_TTL_S = 30.0
# Misses remembered at most; past it they are forgotten all at once (a flood of made-up names
# must not grow memory without bound; it is bounded per request and per key elsewhere).
MAX_MISSES = 10_000


class VersionThresholds:
    def __init__(self, settings: Settings, models: ModelSlot) -> None:
        self._settings = settings
        self._models = models
        self._known: dict[str, float] = {}
        self._missing: dict[str, float] = {}  # version -> monotonic time its miss expires
        self._lock = threading.Lock()

    def cached(self, version: str) -> tuple[bool, float | None]:
        """``(answered, threshold)`` from memory only: ``(True, None)`` is a remembered miss,
        ``(False, None)`` means only a lookup can tell."""
        threshold = self._known.get(version)
        if threshold is not None:
            return True, threshold
        expires = self._missing.get(version)
        return (expires is not None and expires > time.monotonic()), None

    def threshold_for(self, version: str, blobs: BlobStore | None = None) -> float | None:
        answered, threshold = self.cached(version)
        if answered:
            return threshold
        threshold = self._from_edge_manifest(version, blobs)
        if threshold is None:
            threshold = self._from_registry(version)
        with self._lock:
            if threshold is not None:
                self._known[version] = threshold
                self._missing.pop(version, None)
            else:
                if len(self._missing) >= MAX_MISSES:
                    self._missing.clear()
                self._missing[version] = time.monotonic() + MISS_TTL_S
        return threshold

    def look_up(
        self, versions: Iterable[str], blobs: BlobStore | None = None
    ) -> dict[str, float | None]:
        """:meth:`threshold_for` of each version, in one call (one thread-pool hop)."""
        return {version: self.threshold_for(version, blobs) for version in versions}

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
