"""Stored reports (SQL JSON + blob HTML), the cool-down, and the live path from the blob store."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from fatigue_guard.monitoring import MonitorReport, load_report, run_monitor
from fatigue_guard.storage.factory import build_storage
from tests.monitoring.conftest import Scenario
from tests.monitoring.helpers import monitor_settings, write_live


def test_report_stored_readable_and_cool_down(
    tmp_path: Path, scenario_data: Callable[[str], Scenario]
) -> None:
    scenario = scenario_data("device_firmware")
    settings = monitor_settings(tmp_path / "home")
    storage = build_storage(settings)
    storage.upgrade()
    calls: list[MonitorReport] = []

    def run() -> MonitorReport:
        return run_monitor(
            settings,
            current=scenario.window,
            reference=scenario.reference,
            threshold=scenario.threshold,
            on_breach=calls.append,
            storage=storage,
        )

    first = run()
    assert first.decision.breach and first.decision.triggered and calls == [first]
    assert first.id is not None and first.html_key and first.html_key.startswith("reports/")
    doc, html = load_report(storage)
    assert doc["id"] == first.id and doc["decision"]["breach"] is True
    assert doc["decision"]["reasons"] == first.decision.reasons
    assert html is not None and b"data:image/png;base64," in html and b"Ring Gen2" in html

    second = run()  # same breach within the cool-down: reported, not triggered again
    assert second.decision.breach and not second.decision.triggered
    assert second.decision.suppressed and "cool-down" in second.decision.suppressed
    assert calls == [first]
    doc2, _ = load_report(storage, first.id)
    assert doc2["id"] == first.id
    storage.close()


def test_live_window_read_from_the_blob_store(
    tmp_path: Path, scenario_data: Callable[[str], Scenario]
) -> None:
    scenario = scenario_data("device_firmware")
    settings = monitor_settings(tmp_path / "home")
    storage = build_storage(settings)
    storage.upgrade()
    write_live(storage.blobs, scenario.window, model_version="1")
    end = scenario.window["measured_at"].max().to_pydatetime() + timedelta(seconds=1)
    monitor = functools.partial(
        run_monitor,
        settings,
        now=end,
        window=timedelta(days=7, seconds=1),
        reference=scenario.reference,
        threshold=scenario.threshold,
        store=False,
        html=False,
        storage=storage,
    )
    report = monitor()
    assert report.rows == len(scenario.window)
    assert "hrv_rmssd_ms" in {f.name for f in report.drifted_features}

    # A retried batch that overlapped another: its rows are counted once.
    key = storage.feature_store.keys_between(end - timedelta(days=7, seconds=1), end)[0]
    storage.blobs.put(key.replace("bench-", "retry-"), storage.blobs.get(key))
    again = monitor()
    assert again.rows == report.rows
    assert again.as_dict()["features"] == report.as_dict()["features"]
    assert report.performance.labels == 0  # no feedback in SQL: performance waits for labels
    assert report.performance.estimated_precision is not None
    storage.close()
