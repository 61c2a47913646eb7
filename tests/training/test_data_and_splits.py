"""Data assembly (validation, label parsing) and honest splits (by time, by user)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.frame import ContractError, feature_matrix
from fatigue_guard.training.data import load_training_data
from fatigue_guard.training.search import search_on_sample
from fatigue_guard.training.splits import time_split, user_folds, user_subsample


def test_time_split_holds_out_the_most_recent_whole_days(small_cohort: pd.DataFrame) -> None:
    ts = small_cohort["measured_at"]
    split = time_split(ts, holdout_fraction=0.2)
    assert split.cutoff == split.cutoff.floor("D")
    assert ts.iloc[split.train].max() < split.cutoff <= ts.iloc[split.holdout].min()
    assert 0.1 < len(split.holdout) / len(ts) < 0.3
    assert len(split.train) + len(split.holdout) == len(ts)


def test_user_folds_never_share_a_user(small_cohort: pd.DataFrame) -> None:
    users = small_cohort["user_id"].to_numpy()
    folds = user_folds(users, n_splits=3, seed=0)
    assert len(folds) == 3
    seen: set[str] = set()
    for fit_idx, val_idx in folds:
        assert not set(users[fit_idx]) & set(users[val_idx])
        assert not seen & set(users[val_idx])
        seen |= set(users[val_idx])
    assert seen == set(users)


def test_user_subsample_takes_whole_users_up_to_the_cap(small_cohort: pd.DataFrame) -> None:
    users = small_cohort["user_id"].to_numpy()
    assert user_subsample(users, len(users), seed=0) is None
    cap = len(users) // 3
    sample = user_subsample(users, cap, seed=0)
    assert sample is not None and 0 < len(sample) <= cap
    chosen = set(users[sample])
    # Whole users: every row of a chosen user is in, no row of another user is.
    assert set(np.flatnonzero(np.isin(users, list(chosen)))) == set(sample)
    assert len(chosen) >= 2
    again = user_subsample(users, cap, seed=0)
    assert again is not None and np.array_equal(sample, again)  # seeded


def test_search_on_a_sample_scores_the_winner_on_every_row(small_cohort: pd.DataFrame) -> None:
    X = feature_matrix(small_cohort)
    y = small_cohort[LABEL_COLUMN].to_numpy(dtype=bool)
    users = small_cohort["user_id"].to_numpy()
    folds = user_folds(users, n_splits=2, seed=0)
    found = search_on_sample(
        X,
        y,
        users,
        folds,
        max_rows=len(y) // 2,
        floor=0.5,
        confidence_z=0.0,
        budget_s=0.0,
        n_estimators=10,
        seed=0,
        n_jobs=1,
    )
    assert found.sample_rows <= len(y) // 2
    assert len(found.best_oof) == len(y)
    # Every row got an out-of-fold score from the full pass, not only the sampled users' rows.
    assert (found.best_oof > 0).mean() > 0.9
    assert found.oof_seconds > 0


def test_invalid_rows_are_excluded_and_counted_by_rule(small_cohort: pd.DataFrame) -> None:
    raw = small_cohort.head(400).copy()
    raw[LABEL_COLUMN] = np.where(raw[LABEL_COLUMN], "true", "false").astype(object)
    raw["measured_at"] = raw["measured_at"].astype(str)  # as read from a CSV export
    raw.loc[raw.index[0], "hrv_rmssd_ms"] = 0.0  # a missing sensor exported as 0
    raw.loc[raw.index[1], "measured_at"] = "yesterday"
    raw.loc[raw.index[2], LABEL_COLUMN] = "maybe"
    data = load_training_data(raw, max_invalid_share=0.05)
    assert len(data.frame) == 397
    assert data.frame[LABEL_COLUMN].dtype == bool
    rules = {(v.field, v.rule) for v in data.report.violations}
    assert ("hrv_rmssd_ms", "out of range: 1 <= hrv_rmssd_ms <= 300") in rules
    assert ("measured_at", "malformed timestamp") in rules
    assert (LABEL_COLUMN, "must be a boolean") in rules
    assert data.frame["measured_at"].is_monotonic_increasing


def test_missing_required_column_is_a_contract_error(small_cohort: pd.DataFrame) -> None:
    with pytest.raises(ContractError, match="resting_hr_bpm"):
        load_training_data(small_cohort.drop(columns=["resting_hr_bpm"]))
    with pytest.raises(ContractError, match=LABEL_COLUMN):
        load_training_data(small_cohort.drop(columns=[LABEL_COLUMN]))


def test_live_labelled_records_join_the_baseline_once(small_cohort: pd.DataFrame) -> None:
    baseline = small_cohort.head(100)
    live = small_cohort.iloc[90:130].copy()  # 10 events overlap with the baseline
    live[LABEL_COLUMN] = pd.array([True] * 20 + [None] * 20, dtype="boolean")
    live["fatigue_probability"] = 0.5  # a served prediction: never a training column
    data = load_training_data(baseline, live=live)
    assert len(data.frame) == 110  # 100 baseline + 10 new labelled live rows
    assert "fatigue_probability" not in data.frame.columns
    overlap = data.frame[data.frame["event_id"].isin(live["event_id"].iloc[:10])]
    assert overlap[LABEL_COLUMN].all()  # the live feedback label wins
    assert "live feedback (20 labelled)" in data.source
