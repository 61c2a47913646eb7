"""Each drift scenario changes what it says, from the start day on, and nothing else.

The simulator draws every component from its own seeded stream with scenario-independent
shapes, so runs with the same seed agree exactly wherever a scenario has no effect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fatigue_guard.contract.features import FEATURE_NAMES, LABEL_COLUMN
from fatigue_guard.simulation import CohortConfig
from fatigue_guard.simulation.scenarios import FIRMWARE_DEVICE, FIRMWARE_RMSSD_FACTOR
from tests.simulation.conftest import DRIFT_START, USERS
from tests.simulation.helpers import day_of_row, fit_forest, score, split_by_user

M = CohortConfig().moments_per_day
LABEL_DEPENDENT = {"recent_fatigue_rate_14d", LABEL_COLUMN}


def _pre_post(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    after = day_of_row(frame, M) >= DRIFT_START
    return frame[~after], frame[after]


def _assert_same(a: pd.DataFrame, b: pd.DataFrame, columns: list[str]) -> None:
    pd.testing.assert_frame_equal(
        a[columns].reset_index(drop=True), b[columns].reset_index(drop=True)
    )


def test_device_firmware_moves_rmssd_only_for_its_device_after_the_start(cohort) -> None:
    base, drift = cohort("none"), cohort("device_firmware")
    after = day_of_row(base, M) >= DRIFT_START
    hit = after & (base["device_model"] == FIRMWARE_DEVICE).to_numpy()
    assert hit.sum() > 0
    untouched = [c for c in base.columns if c not in {"hrv_rmssd_ms", "hrv_rmssd_ratio"}]
    _assert_same(base, drift, untouched)  # labels too: the sensor changed, not the people
    _assert_same(base[~hit], drift[~hit], ["hrv_rmssd_ms"])
    expected = base.loc[hit, "hrv_rmssd_ms"] * FIRMWARE_RMSSD_FACTOR
    np.testing.assert_allclose(drift.loc[hit, "hrv_rmssd_ms"], expected, rtol=0.01, atol=0.1)
    # The personal ratio drops right after the update, as a monitor would see it.
    first_days = hit & (day_of_row(base, M) < DRIFT_START + 3)
    assert drift.loc[first_days, "hrv_rmssd_ratio"].mean() < 0.8


def test_hrv_population_shift_adds_an_older_low_hrv_cohort_after_the_start(cohort) -> None:
    base, drift = cohort("none"), cohort("hrv_population_shift")
    original = drift["user_id"].isin(base["user_id"]).to_numpy()
    _assert_same(base, drift[original], list(base.columns))
    joiners = drift[~original]
    assert joiners["user_id"].nunique() > 0.3 * USERS
    assert joiners["measured_at"].min() >= base["measured_at"].min() + pd.Timedelta(
        days=DRIFT_START
    )
    _, base_post = _pre_post(base)
    drifted_post = pd.concat([drift[original][day_of_row(base, M) >= DRIFT_START], joiners])
    assert drifted_post["hrv_rmssd_ms"].mean() < 0.9 * base_post["hrv_rmssd_ms"].mean()
    # Sleep barely changes: this is an HRV shift, not a sleep shift.
    assert abs(drifted_post["sleep_duration_h"].mean() - base_post["sleep_duration_h"].mean()) < 0.3


def test_seasonal_sleep_shortens_and_worsens_sleep_after_the_start(cohort) -> None:
    base, drift = cohort("none"), cohort("seasonal_sleep")
    base_pre, base_post = _pre_post(base)
    drift_pre, drift_post = _pre_post(drift)
    _assert_same(base_pre, drift_pre, list(base.columns))
    _assert_same(base, drift, ["event_id", "user_id", "device_model", "platform", "app_version"])
    assert drift_post["sleep_duration_h"].mean() < base_post["sleep_duration_h"].mean() - 0.3
    assert drift_post["sleep_efficiency"].mean() < base_post["sleep_efficiency"].mean() - 0.02


def test_label_shift_raises_prevalence_and_leaves_features_alone(cohort) -> None:
    base, drift = cohort("none"), cohort("label_shift")
    _assert_same(base, drift, [c for c in base.columns if c not in LABEL_DEPENDENT])
    base_pre, base_post = _pre_post(base)
    drift_pre, drift_post = _pre_post(drift)
    _assert_same(base_pre, drift_pre, list(base.columns))
    assert drift_post[LABEL_COLUMN].mean() > base_post[LABEL_COLUMN].mean() + 0.04


def test_concept_shift_changes_the_relation_not_the_features(cohort) -> None:
    base, drift = cohort("none", users=600), cohort("concept_shift", users=600)
    features = [c for c in FEATURE_NAMES if c not in LABEL_DEPENDENT]
    _assert_same(base, drift, features)
    base_pre, base_post = _pre_post(base)
    drift_pre, drift_post = _pre_post(drift)
    _assert_same(base_pre, drift_pre, list(base.columns))
    # Prevalence and the label-derived feature's marginal barely move ...
    assert abs(drift_post[LABEL_COLUMN].mean() - base_post[LABEL_COLUMN].mean()) < 0.03
    rate = "recent_fatigue_rate_14d"
    assert abs(drift_post[rate].mean() - base_post[rate].mean()) < 0.03
    # ... but a model trained before the drift ranks drifted moments much worse.
    train, test = split_by_user(base_pre, seed=0)
    model = fit_forest(train, trees=40, max_samples=0.5)
    test_users = test["user_id"].unique()
    held_out = drift_post[drift_post["user_id"].isin(test_users)]
    same_post = base_post[base_post["user_id"].isin(test_users)]
    drop_with_shift = score(model, same_post).roc_auc - score(model, held_out).roc_auc
    assert drop_with_shift > 0.08
