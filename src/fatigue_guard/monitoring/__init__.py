"""Drift monitoring (DESIGN §6, issue 5): signals, attribution, reports, scheduler.

Entry points: :func:`run_monitor` (one window -> :class:`MonitorReport` with a
:class:`Decision`), :class:`MonitorScheduler` (periodic runs inside ``serve``) and
:func:`build_reference_profile` (called by training to store the reference with the model).
"""

from fatigue_guard.monitoring.job import MonitorError, load_report, run_monitor, store_report
from fatigue_guard.monitoring.profile import (
    PROFILE_ARTIFACT,
    ProfileError,
    ReferenceProfile,
    build_reference_profile,
    load_reference_profile,
)
from fatigue_guard.monitoring.report import Decision, MonitorReport
from fatigue_guard.monitoring.scheduler import MonitorScheduler

__all__ = [
    "PROFILE_ARTIFACT",
    "Decision",
    "MonitorError",
    "MonitorReport",
    "MonitorScheduler",
    "ProfileError",
    "ReferenceProfile",
    "build_reference_profile",
    "load_reference_profile",
    "load_report",
    "run_monitor",
    "store_report",
]
