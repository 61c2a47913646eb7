"""Honest splits: by time and by user, never by shuffled rows.

A person's days are not independent and most of the signal is who the person is, so a random row
split lets the model memorise people and overstates what it will do on new data. Two views:

* **time** - everything before a cutoff date trains, the most recent days are held out (the
  deployment situation: known users, future days). The held-out rows also serve the gate.
* **user** - GroupKFold by user inside the training period: out-of-fold scores for users the
  fold's model never saw. The hyperparameters are chosen on these, and the threshold must hold
  on them.
* **forward** - forward chaining inside the training period: each of the last blocks of days is
  scored by a model fitted on the days before it only, as the final model will score the days
  after its cutoff. The threshold must hold on these too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold


@dataclass(frozen=True)
class TimeSplit:
    train: np.ndarray  # row positions
    holdout: np.ndarray
    cutoff: pd.Timestamp  # first held-out instant (UTC)


def time_split(measured_at: pd.Series, holdout_fraction: float = 0.2) -> TimeSplit:
    """Hold out the most recent ``holdout_fraction`` of rows, cut on a UTC day boundary.

    Cutting on a day boundary keeps one night's moments on one side. When the data covers a
    single day the cut falls inside it rather than leaving one side empty.
    """
    ts = pd.to_datetime(measured_at, utc=True)
    raw_cut = ts.quantile(1.0 - holdout_fraction)
    cutoff = raw_cut.floor("D")
    if not ((ts < cutoff).any() and (ts >= cutoff).any()):
        cutoff = raw_cut
    is_holdout = (ts >= cutoff).to_numpy()
    if is_holdout.all() or not is_holdout.any():
        raise ValueError("cannot split by time: all rows share one timestamp")
    return TimeSplit(np.flatnonzero(~is_holdout), np.flatnonzero(is_holdout), cutoff)


def user_folds(groups: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """GroupKFold by user (shuffled, seeded): each user's rows are in exactly one fold."""
    n_users = len(np.unique(groups))
    if n_users < 2:
        raise ValueError("need at least two users for a by-user split")
    splitter = GroupKFold(n_splits=min(n_splits, n_users), shuffle=True, random_state=seed)
    dummy = np.zeros(len(groups))
    # Integer codes, not the user_id strings: on object arrays GroupKFold's shuffled split falls
    # back to one comparison pass per user (np.isin), minutes at a million rows.
    codes = np.unique(groups, return_inverse=True)[1]
    return list(splitter.split(dummy, groups=codes))


def user_subsample(groups: np.ndarray, max_rows: int, seed: int) -> np.ndarray | None:
    """Row positions of whole users, drawn at random (seeded) until ``max_rows`` is reached;
    ``None`` when every row fits. Whole users, so a by-user split of the sample stays honest."""
    if len(groups) <= max_rows:
        return None
    users, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(users))
    # Users in random order; keep them while the running row count stays within the cap
    # (always at least two, the minimum for a by-user split).
    kept = order[: max(2, int(np.searchsorted(np.cumsum(counts[order]), max_rows, "right")))]
    return np.flatnonzero(np.isin(inverse, kept))


def forward_blocks(
    measured_at: pd.Series, n_blocks: int, block_fraction: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Forward-chaining (fit, score) row positions: the last ``n_blocks`` blocks of about
    ``block_fraction`` of the rows each, cut on UTC day boundaries like :func:`time_split`; each
    block is scored by a fit on every earlier row.

    The block is sized like the hold-out so that the gap between what a block's model saw and
    what it scores matches the gap between the final model and the days it will serve. Blocks
    that would be empty, or leave nothing earlier to fit on, are dropped: short histories give
    fewer blocks or none.
    """
    ts = pd.to_datetime(measured_at, utc=True).reset_index(drop=True)
    days = ts.dt.floor("D")
    cuts = sorted(
        {days.quantile(1.0 - k * block_fraction).floor("D") for k in range(1, n_blocks + 1)}
    )
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for start, stop in zip(cuts, [*cuts[1:], None], strict=True):
        fit = (ts < start).to_numpy()
        block = (ts >= start).to_numpy() & ((ts < stop).to_numpy() if stop is not None else True)
        if fit.any() and block.any():
            out.append((np.flatnonzero(fit), np.flatnonzero(block)))
    return out
