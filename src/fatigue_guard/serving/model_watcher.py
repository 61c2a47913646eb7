"""Follow the ``production`` alias: one background thread per API process polls the registry.

Each worker process polls on its own (no coordination needed: they all read the same alias), so
after a promotion every process serves the new version within one poll interval plus the time
to load and check it. The thread only ever calls :meth:`ModelSlot.refresh`, which does the work
beside the serving model; the event loop is never blocked by it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fatigue_guard.config import Settings
from fatigue_guard.serving.model_slot import ModelSlot, RefreshOutcome

log = logging.getLogger(__name__)


class ModelWatcher:
    def __init__(
        self,
        slot: ModelSlot,
        settings: Settings,
        on_outcome: Callable[[RefreshOutcome], None],
        *,
        interval_s: float | None = None,
    ) -> None:
        self._slot = slot
        self._settings = settings
        self._on_outcome = on_outcome
        self.interval_s = interval_s or settings.model_poll_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop polling; waits for a load in progress (bounded) so shutdown is clean."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                outcome = self._slot.refresh(self._settings)
                self._on_outcome(outcome)
            except Exception:  # the watcher must outlive any single bad poll
                log.exception("model poll failed")
