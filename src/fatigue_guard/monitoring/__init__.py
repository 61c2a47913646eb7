"""Drift monitoring: signals, attribution, reports, scheduler.

Entry points: :func:`run_monitor` (one window -> :class:`MonitorReport` with a
:class:`Decision`) and :class:`MonitorScheduler` (periodic runs inside ``serve``). The reference
a window is compared with is stored with the model: :mod:`fatigue_guard.model.profile`.
"""

from fatigue_guard.monitoring.job import MonitorError, load_report, run_monitor, store_report
from fatigue_guard.monitoring.report import Decision, MonitorReport
from fatigue_guard.monitoring.scheduler import MonitorScheduler

__all__ = [
    "Decision",
    "MonitorError",
    "MonitorReport",
    "MonitorScheduler",
    "load_report",
    "run_monitor",
    "store_report",
]
