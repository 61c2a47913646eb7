"""Every simulator scenario, first window mostly after the onset: flagged, and for the right
reason (features, segment, physiology or performance)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fatigue_guard.monitoring import MonitorReport, run_monitor
from tests.monitoring.conftest import Scenario
from tests.monitoring.helpers import monitor_settings

SLEEP_FEATURES = {"sleep_duration_h", "sleep_efficiency", "waso_min", "sleep_latency_min"}


def monitor(scenario: Scenario) -> MonitorReport:
    return run_monitor(
        monitor_settings(),
        current=scenario.window,
        reference=scenario.reference,
        threshold=scenario.threshold,
        store=False,
        html=False,
    )


def drifted(report: MonitorReport) -> set[str]:
    return {f.name for f in report.drifted_features}


def flagged_physiology(report: MonitorReport) -> set[str]:
    return {p.name for p in report.physiology if p.flagged}


def test_undrifted_window_is_quiet(scenario_data: Callable[[str], Scenario]) -> None:
    report = monitor(scenario_data("none"))
    assert not report.decision.breach, report.decision.reasons
    assert report.performance.labels > 0 and report.performance.precision is not None


def test_hrv_population_shift_names_hrv(scenario_data: Callable[[str], Scenario]) -> None:
    report = monitor(scenario_data("hrv_population_shift"))
    assert report.decision.breach
    assert "hrv_rmssd_ms" in drifted(report)
    assert "hrv_rmssd_ms" in flagged_physiology(report)
    hrv = next(f for f in report.features if f.name == "hrv_rmssd_ms")
    assert hrv.scope == "population"  # older joiners on every device, not one segment
    assert not drifted(report) & {"local_hour", "hours_awake", "steps_24h"}


def test_device_firmware_names_the_device_model(scenario_data: Callable[[str], Scenario]) -> None:
    report = monitor(scenario_data("device_firmware"))
    assert report.decision.breach
    assert drifted(report) <= {"hrv_rmssd_ms", "hrv_rmssd_ratio"}
    hrv = next(f for f in report.features if f.name == "hrv_rmssd_ms")
    assert hrv.drifted and hrv.scope == "segment"
    top = hrv.segments[0]
    assert (top["column"], top["value"]) == ("device_model", "Ring Gen2")
    named = {(s["column"], s["value"]) for s in hrv.segments}
    assert not {n for n in named if n[0] == "device_model" and n[1] != "Ring Gen2"}
    assert any("device_model=Ring Gen2" in r for r in report.decision.reasons)


def test_seasonal_sleep_names_sleep_features(scenario_data: Callable[[str], Scenario]) -> None:
    report = monitor(scenario_data("seasonal_sleep"))
    assert report.decision.breach
    assert drifted(report) >= SLEEP_FEATURES
    assert {"sleep_efficiency", "sleep_duration_h"} <= flagged_physiology(report)
    assert not drifted(report) & {"local_hour", "steps_24h"}


def test_concept_shift_shows_in_performance(scenario_data: Callable[[str], Scenario]) -> None:
    report = monitor(scenario_data("concept_shift"))
    perf = report.performance
    assert report.decision.breach
    assert not drifted(report) & SLEEP_FEATURES and not flagged_physiology(report)
    assert perf.precision_breach  # labelled: the upper Wilson bound is under the floor
    assert perf.precision_interval is not None and perf.precision_interval[1] < perf.floor
    # Estimated from scores alone it still looks fine: the gap is the concept-shift signal.
    assert perf.estimated_precision_labelled is not None and perf.precision is not None
    assert perf.estimated_precision_labelled - perf.precision > 0.2
    assert perf.calibration_drift


def test_label_shift_shows_in_performance(scenario_data: Callable[[str], Scenario]) -> None:
    report = monitor(scenario_data("label_shift"))
    perf = report.performance
    assert report.decision.breach
    assert not drifted(report) & SLEEP_FEATURES and not flagged_physiology(report)
    assert perf.calibration_drift and not perf.precision_breach
    assert perf.event_rate is not None and perf.expected_event_rate_labelled is not None
    assert perf.event_rate > 1.2 * perf.expected_event_rate_labelled
    assert any("calibration drift" in r for r in report.decision.reasons)


@pytest.mark.parametrize("name", ["device_firmware", "seasonal_sleep"])
def test_estimate_sits_beside_the_labelled_figure(
    scenario_data: Callable[[str], Scenario], name: str
) -> None:
    perf = monitor(scenario_data(name)).performance.as_dict()
    assert perf["estimated_precision"] is not None and perf["precision"] is not None
    assert abs(perf["agreement"]["precision_gap"]) < 0.1  # covariate drift: estimate agrees
