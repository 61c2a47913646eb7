"""Decision thresholds by model version, for predictions made elsewhere (edge sync).

An edge event names the model version that produced it; the threshold it was decided with is
the one registered with that version. Versions are immutable, so a hit is cached forever.
"""

from __future__ import annotations

import logging
import threading

from fatigue_guard.config import Settings
from fatigue_guard.serving.model_slot import ModelSlot

log = logging.getLogger(__name__)


class VersionThresholds:
    def __init__(self, settings: Settings, models: ModelSlot) -> None:
        self._settings = settings
        self._models = models
        self._known: dict[str, float] = {}
        self._lock = threading.Lock()

    def threshold_for(self, version: str) -> float | None:
        current = self._models.current
        if current is not None and current.version == version:
            return current.threshold
        if version in self._known:
            return self._known[version]
        from fatigue_guard.registry import get_model_version

        try:
            threshold = float(get_model_version(self._settings, version).threshold)
        except Exception as exc:  # unknown version or registry down: the event is rejected
            log.info("no threshold for model version %s: %s", version, type(exc).__name__)
            return None
        with self._lock:
            self._known[version] = threshold
        return threshold
