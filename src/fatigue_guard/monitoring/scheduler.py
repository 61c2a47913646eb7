"""In-process scheduler: run the monitor every ``monitor_interval_s`` inside ``serve``.

A daemon thread that sleeps on an Event, so ``stop()`` returns at once instead of waiting out the
interval. Failures are logged and the loop carries on (a monitor that dies on one bad window would
silently stop watching). Several API replicas may each run one; the cool-down on stored reports
and the lead's retrain lock keep that to one retrain.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fatigue_guard.config import Settings
from fatigue_guard.monitoring.job import BreachHook, run_monitor
from fatigue_guard.monitoring.report import MonitorReport

log = logging.getLogger(__name__)


class MonitorScheduler:
    """Start/stop a periodic :func:`run_monitor`; ``on_breach`` is the retrain hook."""

    def __init__(
        self,
        settings: Settings,
        on_breach: BreachHook | None,
        *,
        run: Callable[..., MonitorReport] = run_monitor,
        first_delay_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.on_breach = on_breach
        self._run = run
        # Wait a full interval before the first run by default: a replica restart must not
        # re-run the monitor (and re-read a week of data) every time.
        self._first_delay_s = (
            settings.monitor_interval_s if first_delay_s is None else first_delay_s
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_report: MonitorReport | None = None
        self.runs = 0

    @property
    def enabled(self) -> bool:
        return self.settings.monitor_enabled

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start the thread; ``False`` (and nothing started) when monitoring is switched off."""
        if not self.enabled:
            log.info("monitor scheduler disabled (FATIGUE_GUARD_MONITOR_ENABLED=false)")
            return False
        if self.running:
            return True
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fg-monitor", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def run_once(self) -> MonitorReport | None:
        """One monitoring run now; errors are logged, not raised."""
        try:
            report = self._run(self.settings, on_breach=self.on_breach)
        except Exception:
            log.exception("monitor run failed")
            return None
        self.runs += 1
        self.last_report = report
        if report.decision.breach:
            log.warning("monitor breach (report %s): %s", report.id, report.decision.reasons)
        return report

    def _loop(self) -> None:
        delay = self._first_delay_s
        while not self._stop.wait(delay):
            self.run_once()
            delay = self.settings.monitor_interval_s
