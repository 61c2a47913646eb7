"""Personal-baseline features, computed causally from each user's own history.

A device only knows a person's past: every baseline at day ``d`` uses days before ``d`` (and,
for the sleep debt, the night that just ended), never later ones. The first
:data:`WARMUP_DAYS` days of a user's history have no baseline yet: those features are null,
as they are for a newly paired tracker.
"""

from __future__ import annotations

from typing import Final

import numpy as np

WARMUP_DAYS: Final[int] = 3
BASELINE_WINDOW_DAYS: Final[int] = 14
DEBT_WINDOW_DAYS: Final[int] = 7


def _window_sums(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of non-NaN values over days ``[d - window, d - 1]``, ``(users, days)``."""
    present = ~np.isnan(values)
    zero = np.zeros((values.shape[0], 1))
    cs = np.concatenate([zero, np.cumsum(np.where(present, values, 0.0), axis=1)], axis=1)
    cn = np.concatenate([zero, np.cumsum(present, axis=1)], axis=1)
    days = np.arange(values.shape[1])
    lo = np.maximum(days - window, 0)
    return cs[:, days] - cs[:, lo], cn[:, days] - cn[:, lo]


def prior_mean(values: np.ndarray, window: int = BASELINE_WINDOW_DAYS) -> np.ndarray:
    """Mean of each user's previous ``window`` days (NaN-aware), NaN during warm-up."""
    total, count = _window_sums(values, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    warm = np.arange(values.shape[1])[None, :] >= WARMUP_DAYS
    return np.where(warm & (count >= WARMUP_DAYS), mean, np.nan)


def sleep_debt_7d(goal_h: np.ndarray, duration_h: np.ndarray) -> np.ndarray:
    """Hours short of the personal sleep goal over the last 7 nights (this one included).

    With fewer than 7 nights of history the sum is scaled up to a 7-night equivalent.
    """
    short = goal_h[:, None] - duration_h
    zero = np.zeros((short.shape[0], 1))
    cs = np.concatenate([zero, np.cumsum(short, axis=1)], axis=1)  # cs[:, k] = sum of nights < k
    days = np.arange(short.shape[1])
    lo = np.maximum(days - (DEBT_WINDOW_DAYS - 1), 0)
    debt = (cs[:, days + 1] - cs[:, lo]) * DEBT_WINDOW_DAYS / (days + 1 - lo)
    warm = np.arange(short.shape[1])[None, :] >= WARMUP_DAYS
    return np.where(warm, np.clip(debt, -30.0, 60.0), np.nan)


def recent_fatigue_rate(labels: np.ndarray, date_index: np.ndarray) -> np.ndarray:
    """Share of the user's positive reports over the 14 calendar days before each moment's date.

    ``labels`` and ``date_index`` are ``(users, days, moments)``; ``date_index`` is the
    calendar date of each moment, counted from the user's first day. Null until the window
    holds reports from at least :data:`WARMUP_DAYS` dates.
    """
    users = labels.shape[0]
    n_dates = int(date_index.max()) + 1
    flat = (np.arange(users)[:, None, None] * n_dates + date_index).ravel()
    pos = np.bincount(flat, weights=labels.ravel().astype(np.float64), minlength=users * n_dates)
    tot = np.bincount(flat, minlength=users * n_dates).astype(np.float64)
    pos, tot = pos.reshape(users, n_dates), tot.reshape(users, n_dates)
    zero = np.zeros((users, 1))
    cs_pos = np.concatenate([zero, np.cumsum(pos, axis=1)], axis=1)
    cs_tot = np.concatenate([zero, np.cumsum(tot, axis=1)], axis=1)
    cs_dates = np.concatenate([zero, np.cumsum(tot > 0, axis=1)], axis=1)

    rows = date_index.reshape(users, -1)
    lo = np.maximum(rows - BASELINE_WINDOW_DAYS, 0)

    def window(cs: np.ndarray) -> np.ndarray:
        return np.take_along_axis(cs, rows, axis=1) - np.take_along_axis(cs, lo, axis=1)

    n_pos, n_tot, n_dates_seen = window(cs_pos), window(cs_tot), window(cs_dates)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = n_pos / n_tot
    rate = np.where(n_dates_seen >= WARMUP_DAYS, rate, np.nan)
    return rate.reshape(labels.shape)
