"""What a monitoring breach starts: the retraining job, linked to the report that caused it.

``FATIGUE_GUARD_RETRAIN_TRIGGER`` chooses: ``in_process`` runs the job in the monitor's process,
``cli`` starts nothing (a scheduled ``fatigue-guard retrain`` retrains), ``azureml`` submits the
retrain command job to Azure ML.
"""

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


def breach_hook(
    settings: Settings, storage: Storage, bus: MessageBus, *, ml_client: object | None = None
) -> Callable[[MonitorReport], object] | None:
    """The ``run_monitor(on_breach=...)`` hook ``settings.retrain_trigger`` asks for.

    ``None`` for ``cli``: the monitor only reports, and the breach's exit code is left to whatever
    schedules ``fatigue-guard retrain``. ``ml_client`` replaces the Azure ML client built from the
    settings (tests).
    """
    if settings.retrain_trigger == "cli":
        return None
    if settings.retrain_trigger == "azureml":
        return submit_retrain_on_breach(settings, ml_client=ml_client)
    return retrain_on_breach(settings, storage, bus)


def submit_retrain_on_breach(
    settings: Settings, *, ml_client: object | None = None
) -> Callable[[MonitorReport], str]:
    """A hook that submits the retrain command job to Azure ML and returns the job's name.

    The job retrains on the workspace's compute cluster under the same SQL lease and cool-down
    as every other retrain, so a submission never races a running one.
    """

    def hook(report: MonitorReport) -> str:
        # Imported here: the Azure ML SDK is an optional extra, needed only on this path.
        from fatigue_guard.deploy.azureml import submit_retrain

        reasons = "; ".join(report.decision.reasons) or "monitor breach"
        name = submit_retrain(
            settings,
            reason=f"monitor report {report.id}: {reasons}",
            drift_report_id=report.id,
            ml_client=ml_client,
        )
        log.info("retrain job %s submitted to Azure ML after report %s", name, report.id)
        return name

    return hook


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
        self._run = breach_hook(settings, storage, bus)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # A RetrainOutcome in process, the submitted job's name with retrain_trigger=azureml.
        self.last_outcome: object | None = None

    def __call__(self, report: MonitorReport) -> None:
        if self._run is None:
            log.info("retrain_trigger=cli: breach noted; a scheduled `fatigue-guard retrain` acts")
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                log.info("a retrain is already running in this process; breach noted only")
                return
            self._thread = threading.Thread(
                target=self._work, args=(report,), name="retrain", daemon=True
            )
            self._thread.start()

    def _work(self, report: MonitorReport) -> None:
        assert self._run is not None
        try:
            self.last_outcome = self._run(report)
        except Exception:  # an unreachable Azure ML must not kill the thread silently
            log.exception("retrain trigger failed for monitor report %s", report.id)

    def join(self, timeout_s: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
