"""The in-process scheduler: off switch, periodic runs, prompt stop, survives failures."""

from __future__ import annotations

import threading
from typing import Any

from fatigue_guard.monitoring import MonitorScheduler
from fatigue_guard.monitoring.report import Decision
from tests.monitoring.helpers import monitor_settings


class FakeReport:
    id = 1
    decision = Decision(breach=False, reasons=[])


def test_disabled_scheduler_does_not_start() -> None:
    scheduler = MonitorScheduler(monitor_settings(monitor_enabled=False), None)
    assert scheduler.start() is False and not scheduler.running


def test_runs_periodically_and_stops_promptly() -> None:
    calls = threading.Semaphore(0)
    failures = [True]

    def run(settings: Any, **kwargs: Any) -> FakeReport:
        calls.release()
        if failures and failures.pop():
            raise RuntimeError("store down")  # the loop must carry on
        return FakeReport()

    scheduler = MonitorScheduler(
        monitor_settings(monitor_interval_s=0.05), None, run=run, first_delay_s=0.0
    )
    assert scheduler.start()
    for _ in range(3):
        assert calls.acquire(timeout=5)
    scheduler.stop(timeout_s=2)
    assert not scheduler.running and scheduler.runs >= 1
