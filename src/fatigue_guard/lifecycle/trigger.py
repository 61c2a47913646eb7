"""What a monitoring breach starts: the retraining job, linked to the report that caused it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from fatigue_guard.config import Settings
from fatigue_guard.lifecycle.bus import MessageBus
from fatigue_guard.lifecycle.retrain import RetrainOutcome, run_retraining
from fatigue_guard.storage.factory import Storage

if TYPE_CHECKING:
    from fatigue_guard.monitoring.report import MonitorReport

log = logging.getLogger(__name__)


def retrain_on_breach(
    settings: Settings, storage: Storage, bus: MessageBus
) -> Callable[[MonitorReport], RetrainOutcome]:
    """A ``run_monitor(on_breach=...)`` hook that runs the retraining job now, in this thread."""

    def hook(report: MonitorReport) -> RetrainOutcome:
        reasons = "; ".join(report.decision.reasons) or "monitor breach"
        outcome = run_retraining(
            settings,
            storage,
            bus=bus,
            trigger="monitor",
            reason=reasons,
            drift_report_id=report.id,
        )
        log.info("retraining after report %s: %s (%s)", report.id, outcome.status, outcome.reason)
        return outcome

    return hook


class BackgroundRetrainer:
    """The in-process worker: a breach starts the job on a thread, never on the caller's.

    The lease in the DB keeps replicas from retraining together; this object only keeps one
    process from starting a second job while its own is still running.
    """

    def __init__(self, settings: Settings, storage: Storage, bus: MessageBus) -> None:
        self._run = retrain_on_breach(settings, storage, bus)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_outcome: RetrainOutcome | None = None

    def __call__(self, report: MonitorReport) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                log.info("a retrain is already running in this process; breach noted only")
                return
            self._thread = threading.Thread(
                target=self._work, args=(report,), name="retrain", daemon=True
            )
            self._thread.start()

    def _work(self, report: MonitorReport) -> None:
        self.last_outcome = self._run(report)

    def join(self, timeout_s: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
