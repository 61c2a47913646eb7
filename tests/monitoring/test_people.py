"""Person-level and segment decisions on edge cases: a few people's habits, out-of-range values,
format 1 profiles, and what a format 2 profile stores."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fatigue_guard.model.profile import (
    PERSON_TAIL,
    PROFILE_FORMAT,
    PROFILE_FORMAT_V1,
    ProfileError,
    ReferenceProfile,
    build_reference_profile,
)
from fatigue_guard.monitoring import MonitorReport, run_monitor
from tests.monitoring.conftest import Scenario
from tests.monitoring.helpers import monitor_settings
from tests.monitoring.pmdata import RealCohort, RealConfig, real_cohort


@pytest.fixture(scope="module")
def stationary(person_days: pd.DataFrame) -> RealCohort:
    return real_cohort(RealConfig("none", seed=0), person_days)


def judge(window: pd.DataFrame, reference: ReferenceProfile) -> MonitorReport:
    return run_monitor(
        monitor_settings(),
        current=window,
        reference=reference,
        threshold=0.5,
        store=False,
        html=False,
    )


def as_format_1(profile: dict[str, Any]) -> dict[str, Any]:
    """What training wrote before person-level statistics existed."""
    old = copy.deepcopy(profile)
    old["format"] = PROFILE_FORMAT_V1
    old.pop("people", None)
    for feature in old["features"].values():
        feature.pop("persons", None)
        feature.pop("out_of_range_deff", None)
    for values in old["segments"].values():
        for segment in values.values():
            segment.pop("people", None)
            for feature in segment["features"].values():
                feature.pop("persons", None)
                feature.pop("out_of_range_share", None)
    return old


@pytest.mark.slow
def test_a_few_peoples_habits_do_not_name_their_segment(stationary: RealCohort) -> None:
    """Four people of the smallest app version run 12 bpm higher: the version's mean moves past
    the clinical tolerance and 1.5 times the population's shift, but four of some fifteen people
    are no evidence that the version does anything."""
    reference = ReferenceProfile.from_frame(stationary.reference)
    window = stationary.window.copy()
    version = window.groupby("app_version")["user_id"].nunique().idxmin()
    few = window.loc[window["app_version"] == version, "user_id"].drop_duplicates()[:4]
    rows = window["user_id"].isin(few)
    window.loc[rows, "resting_hr_bpm"] += 12.0
    report = judge(window, reference)
    assert not report.decision.breach, report.decision.reasons
    hr = next(f for f in report.features if f.name == "resting_hr_bpm")
    assert not hr.drifted and not hr.segments


@pytest.mark.slow
def test_out_of_range_values_are_attributed_to_their_segment(stationary: RealCohort) -> None:
    """An app release sends sleep efficiency in percent (87 for 0.87) from day 2 of the window."""
    reference = ReferenceProfile.from_frame(stationary.reference)
    window = stationary.window.copy()
    day = (window["measured_at"] - window["measured_at"].min()).dt.days
    rows = (window["app_version"] == "3.2.0") & (day >= 2)
    window.loc[rows, "sleep_efficiency"] *= 100
    report = judge(window, reference)
    eff = next(f for f in report.features if f.name == "sleep_efficiency")
    assert eff.range_drifted and eff.out_of_range_current > 0.05
    assert [(s["column"], s["value"]) for s in eff.range_segments] == [("app_version", "3.2.0")]
    assert any(
        r.startswith("out of range: sleep_efficiency") and "app_version=3.2.0" in r
        for r in report.decision.reasons
    )
    quality = {(q.column, q.value): q for q in report.quality}
    issues = quality["app_version", "3.2.0"].issues
    assert ("sleep_efficiency", "out_of_range") in {(i["feature"], i["issue"]) for i in issues}
    others = {k: q for k, q in quality.items() if k[0] == "app_version" and k[1] != "3.2.0"}
    assert not any(q.issues for q in others.values())


def test_format_1_profiles_still_load_and_judge_rows(
    scenario_data: Callable[[str], Scenario],
) -> None:
    scenario = scenario_data("device_firmware")
    old = as_format_1(json.loads(scenario.reference.to_json()))
    reference = ReferenceProfile.from_dict(old)
    assert not reference.has_persons and reference.persons("hrv_rmssd_ms") is None
    report = run_monitor(
        monitor_settings(),
        current=scenario.window,
        reference=reference,
        threshold=scenario.threshold,
        store=False,
        html=False,
    )
    assert report.persons == []
    hrv = next(f for f in report.features if f.name == "hrv_rmssd_ms")
    assert hrv.drifted and hrv.segments[0]["value"] == "Ring Gen2"
    assert {s["unit"] for s in hrv.segments} == {"rows"}
    with pytest.raises(ProfileError, match="not one of"):
        ReferenceProfile.from_dict({**old, "format": "fatigue-guard/monitor-profile/0"})


def test_profile_stores_people_and_the_range_of_their_weekly_means() -> None:
    rng = np.random.default_rng(3)
    people, days = 60, 28
    level = rng.normal(60, 7, people)
    frame = pd.DataFrame(
        {
            "user_id": np.repeat([f"u{i}" for i in range(people)], days),
            "measured_at": np.tile(
                pd.date_range("2024-01-01", periods=days, freq="D", tz="UTC"), people
            ),
            "resting_hr_bpm": np.repeat(level, days) + rng.normal(0, 2, people * days),
            "device_model": np.repeat(np.where(np.arange(people) < 20, "A", "B"), days),
        }
    )
    profile = build_reference_profile(frame)
    assert profile["format"] == PROFILE_FORMAT and profile["people"] == people
    persons = profile["features"]["resting_hr_bpm"]["persons"]
    assert profile["person_min_values"] == 4  # half of a week of daily rows
    assert persons["k"] == people and persons["blocks"] == 4 * people
    assert abs(persons["mean"] - level.mean()) < 0.5
    # Weekly means vary little around a person's level: the range is the people's spread.
    lo = persons["range"][0]
    assert np.quantile(level, PERSON_TAIL) - 2 < lo < np.quantile(level, PERSON_TAIL) + 2
    assert abs(persons["below"] - PERSON_TAIL) < 0.02 and abs(persons["above"] - PERSON_TAIL) < 0.02
    # A person's four weeks fall on the same side, so they count as about one.
    assert people * 0.8 < persons["below_n_eff"] < people * 2
    segment = profile["segments"]["device_model"]["A"]
    assert segment["people"] == 20
    assert segment["features"]["resting_hr_bpm"]["persons"]["values"]["k"] == 20
    missing = segment["features"]["hrv_rmssd_ms"]["persons"]["missing"]
    assert missing["k"] == 20 and missing["mean"] == 1.0
    ReferenceProfile.from_dict(json.loads(json.dumps(profile)))  # JSON round trip


def test_without_user_ids_the_monitor_judges_rows(
    scenario_data: Callable[[str], Scenario],
) -> None:
    """A table without user ids (or a profile built without them) has no people to judge: the
    person-level signals are skipped and the segments are judged on rows."""
    scenario = scenario_data("device_firmware")
    anonymous = scenario.window.drop(columns=["user_id"])
    report = run_monitor(
        monitor_settings(),
        current=anonymous,
        reference=scenario.reference,
        threshold=scenario.threshold,
        store=False,
        html=False,
    )
    assert report.persons == []
    hrv = next(f for f in report.features if f.name == "hrv_rmssd_ms")
    assert hrv.drifted and hrv.segments[0]["value"] == "Ring Gen2"
    assert hrv.segments[0]["unit"] == "rows"
