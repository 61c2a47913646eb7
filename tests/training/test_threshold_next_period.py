"""The decision threshold holds on later days when the cohort drifts during the training period.

A small cohort whose event rate falls from day 6 to day 12 and stays low: out-of-fold scores by
user mix the early, eventful days with the later ones, so a threshold chosen on them alone is too
low for the days after the cutoff. The threshold training chooses (the stricter of the
out-of-fold and the forward-chained views' own) must keep the held-out days' precision at the
floor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fatigue_guard.model.pipeline import build_pipeline, positive_proba
from fatigue_guard.model.threshold import select_threshold, select_threshold_for_views
from fatigue_guard.training.search import oof_scores
from fatigue_guard.training.splits import forward_blocks, time_split, user_folds
from fatigue_guard.training.threshold_views import FORWARD_VIEW, OOF_VIEW, threshold_views

FLOOR, Z, TREES, SEED = 0.75, 1.645, 30, 0
USERS, DAYS, MOMENTS = 100, 20, 4


def drifting_cohort() -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Series]:
    """Features, labels, users and times; the event log-odds fall by 1 from day 6 to day 12."""
    rng = np.random.default_rng(SEED)
    n = USERS * DAYS * MOMENTS
    user = np.repeat(np.arange(USERS), DAYS * MOMENTS)
    day = np.tile(np.repeat(np.arange(DAYS), MOMENTS), USERS)
    hour = np.tile(np.arange(MOMENTS) * 5 + 6, USERS * DAYS)
    at = pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(day * 24 + hour, unit="h")
    X = rng.normal(0, 1, (n, 3))
    person = rng.normal(0, 0.5, USERS)[user]
    trend = -np.clip((day - 6) / 6, 0, 1)
    logit = -3.2 + 3.5 * X[:, 0] + 0.8 * X[:, 1] + person + trend
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    return X, y, user.astype(str), pd.Series(at)


def held_out_precision(scores: np.ndarray, y: np.ndarray, threshold: float) -> float:
    alert = scores >= threshold
    return float((alert & y).sum() / max(int(alert.sum()), 1))


def test_forward_blocks_score_later_days_with_fits_on_earlier_days_only() -> None:
    _, _, _, at = drifting_cohort()
    blocks = forward_blocks(at, 2, 0.2)
    assert len(blocks) == 2
    for fit, scored in blocks:
        assert at.iloc[fit].max() < at.iloc[scored].min()
    # The blocks are disjoint, consecutive and end with the last day.
    assert at.iloc[blocks[0][1]].max() < at.iloc[blocks[1][1]].min()
    assert at.iloc[blocks[1][1]].max() == at.max()
    # One day of history: nothing to chain.
    assert forward_blocks(at[at < at.min() + pd.Timedelta(hours=23)], 2, 0.2) == []


def test_threshold_holds_on_later_days_where_the_across_user_choice_does_not() -> None:
    X, y, users, at = drifting_cohort()
    split = time_split(at, 0.2)
    tr, ho = split.train, split.holdout
    X_tr, y_tr, g_tr = X[tr], y[tr], users[tr]
    oof = oof_scores(
        {}, X_tr, y_tr, user_folds(g_tr, 3, SEED), n_estimators=TREES, seed=SEED, n_jobs=2
    )
    final = build_pipeline({}, n_estimators=TREES, seed=SEED, n_jobs=2).fit(X_tr, y_tr)
    p_ho = positive_proba(final, X[ho])

    across_users = select_threshold(y_tr, oof, FLOOR, confidence_z=Z, groups=g_tr)
    views = threshold_views(
        {},
        X_tr,
        y_tr,
        g_tr,
        at.iloc[tr],
        oof,
        block_fraction=0.2,
        n_estimators=TREES,
        seed=SEED,
        n_jobs=2,
    )
    chosen = select_threshold_for_views(views, FLOOR, confidence_z=Z)

    assert held_out_precision(p_ho, y[ho], across_users.threshold) < FLOOR
    assert held_out_precision(p_ho, y[ho], chosen.choice.threshold) >= FLOOR
    assert chosen.binding == FORWARD_VIEW
    assert set(chosen.by_view) == {OOF_VIEW, FORWARD_VIEW}
    assert chosen.choice.precision_lower_bound >= FLOOR
