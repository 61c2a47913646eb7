"""The simulator's output: shape, types, reproducibility, prevalence and contract validity."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from fatigue_guard.contract.features import (
    FEATURE_NAMES,
    ID_COLUMNS,
    INTEGER_FEATURES,
    LABEL_COLUMN,
    SEGMENT_COLUMNS,
)
from fatigue_guard.contract.frame import coerce_feature_columns, validate_frame
from fatigue_guard.simulation import SCENARIOS, CohortConfig, simulate_cohort
from tests.simulation.conftest import DAYS, USERS


def test_columns_types_and_row_count(cohort) -> None:
    frame = cohort()
    assert list(frame.columns) == [*ID_COLUMNS, *SEGMENT_COLUMNS, *FEATURE_NAMES, LABEL_COLUMN]
    assert len(frame) == USERS * DAYS * CohortConfig().moments_per_day
    assert frame["user_id"].nunique() == USERS
    assert str(frame["measured_at"].dtype) == "datetime64[ns, UTC]"
    assert frame[LABEL_COLUMN].dtype == bool
    assert all(frame[name].dtype == np.float64 for name in FEATURE_NAMES)
    for name in INTEGER_FEATURES:
        values = frame[name].dropna()
        assert (values == np.floor(values)).all(), name


def test_event_ids_are_unique_uuids(cohort) -> None:
    ids = cohort()["event_id"]
    assert ids.is_unique
    for text in ids.sample(50, random_state=0):
        assert str(uuid.UUID(text)) == text
        assert uuid.UUID(text).version == 4


def test_rows_are_in_time_order_within_each_user(cohort) -> None:
    frame = cohort()
    assert frame.groupby("user_id")["measured_at"].apply(lambda s: s.is_monotonic_increasing).all()


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    config = CohortConfig(users=40, days=10, seed=5)
    first, again = simulate_cohort(config), simulate_cohort(config)
    pd.testing.assert_frame_equal(first, again)
    other = simulate_cohort(CohortConfig(users=40, days=10, seed=6))
    assert not first["event_id"].isin(other["event_id"]).any()
    assert not np.allclose(first["sleep_duration_h"], other["sleep_duration_h"])


def test_prevalence_is_in_band_with_default_settings() -> None:
    frame = simulate_cohort(CohortConfig(users=1000, seed=3))
    assert 0.08 <= frame[LABEL_COLUMN].mean() <= 0.15


def test_people_differ_in_baseline_risk(cohort) -> None:
    per_user = cohort().groupby("user_id")[LABEL_COLUMN].mean()
    # Far more spread than a common rate would give (binomial sd of ~100 draws is ~0.03).
    assert per_user.std() > 0.1
    assert per_user.quantile(0.9) > 3 * per_user.median()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_scenario_satisfies_the_contract(cohort, scenario: str) -> None:
    frame = cohort(scenario)
    report = validate_frame(coerce_feature_columns(frame))
    assert report.violations == [], report.summary()


def test_device_models_without_sensors_report_nulls(cohort) -> None:
    frame = cohort()
    hrv_missing = frame.groupby("device_model")["hrv_rmssd_ms"].apply(lambda s: s.isna().mean())
    stages_missing = frame.groupby("device_model")["deep_sleep_pct"].apply(
        lambda s: s.isna().mean()
    )
    # Each device model either always or never has the sensor: nulls come from the device.
    assert set(hrv_missing.round(6)) == {0.0, 1.0}
    assert set(stages_missing.round(6)) == {0.0, 1.0}
    assert (frame["deep_sleep_pct"].isna() == frame["rem_sleep_pct"].isna()).all()


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError, match="scenario"):
        CohortConfig(scenario="bogus")
    with pytest.raises(ValueError, match="drift_start"):
        CohortConfig(days=10, drift_start=10, scenario="label_shift")
