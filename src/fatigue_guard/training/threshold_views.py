"""The views of the training period the decision threshold must hold on.

Out-of-fold scores by user answer "will precision hold on other people?"; they mix every day of
the training period, so they cannot answer "will it hold on the days after the cutoff?", and on
the simulator the held-out most recent days landed below the floor with a threshold chosen on
them alone. The forward-chained view answers the second question: a model with the winning
settings is fitted on the earlier days only and scores the next block of days, for the last
:data:`FORWARD_BLOCKS` blocks of the hold-out's size. Each view chooses its own threshold with
the clustered margin and the highest is kept
(:func:`~fatigue_guard.model.threshold.select_threshold_for_views`).

Two blocks, pooled, rather than one: one block of a short history holds too few alerts for a
tight bound (the 240-person demo cohort found no eligible threshold on its last block alone).
The cost is two extra fits, on about 60 % and 80 % of the training rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fatigue_guard.model.threshold import ScoredView
from fatigue_guard.training.search import oof_scores
from fatigue_guard.training.splits import forward_blocks

FORWARD_BLOCKS = 2
OOF_VIEW = "oof_user"
FORWARD_VIEW = "forward_time"


def forward_view(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    measured_at: pd.Series,
    *,
    block_fraction: float,
    n_estimators: int,
    seed: int,
    n_jobs: int,
) -> ScoredView | None:
    """Forward-chained scores of the training rows' last blocks (``None`` when the history is
    too short to chain)."""
    blocks = forward_blocks(measured_at, FORWARD_BLOCKS, block_fraction)
    if not blocks:
        return None
    scored = np.concatenate([rows for _, rows in blocks])
    scores = oof_scores(params, X, y, blocks, n_estimators=n_estimators, seed=seed, n_jobs=n_jobs)
    return ScoredView(FORWARD_VIEW, y[scored], scores[scored], groups[scored])


def threshold_views(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    measured_at: pd.Series,
    oof: np.ndarray,
    *,
    block_fraction: float,
    n_estimators: int,
    seed: int,
    n_jobs: int,
) -> list[ScoredView]:
    """The out-of-fold-by-user view first (its recall is the one maximised), then the
    forward-chained one when the history allows it."""
    views = [ScoredView(OOF_VIEW, y, oof, groups)]
    forward = forward_view(
        params,
        X,
        y,
        groups,
        measured_at,
        block_fraction=block_fraction,
        n_estimators=n_estimators,
        seed=seed,
        n_jobs=n_jobs,
    )
    if forward is not None:
        views.append(forward)
    return views
