"""Bounded hyperparameter search, budgeted in seconds, scored like the product is judged.

Objective: recall at precision >= floor (with the same confidence margin as the final threshold)
on out-of-fold, by-user predictions; ties broken by PR-AUC. The defaults are always tried first,
so a zero budget still yields a model; further random candidates are tried only while the budget,
extrapolated from the candidates so far, allows another one to finish.

On large data (:func:`search_on_sample`) candidates are compared on a sample of whole users
(``max_rows``), and only the winner is scored out-of-fold on every row: the threshold must be
chosen on scores of models trained on as much data as the final one sees, but the *ranking* of
candidates settles on far fewer rows. Without the sample, the first candidate's full
cross-validation alone overran the budget by minutes at 200k rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from fatigue_guard.model.pipeline import DEFAULT_FOREST_PARAMS, build_pipeline, positive_proba
from fatigue_guard.model.threshold import NoThresholdMeetsFloor, select_threshold
from fatigue_guard.training.splits import user_folds, user_subsample

SEARCH_SPACE: dict[str, list[Any]] = {
    "max_depth": [8, 10, 12, 14, 18, None],
    "min_samples_leaf": [1, 5, 10, 20, 40],
    "max_features": ["sqrt", 0.33, 0.5],
    # Class imbalance (prevalence ~10 %): reweight or not, chosen by the objective.
    "class_weight": [None, "balanced", "balanced_subsample"],
    "max_samples": [None, 0.5, 0.8],
}


@dataclass
class Trial:
    params: dict[str, Any]
    recall_at_floor: float
    pr_auc: float
    seconds: float

    @property
    def key(self) -> tuple[float, float]:
        return (self.recall_at_floor, self.pr_auc)


@dataclass
class SearchResult:
    best_params: dict[str, Any]
    best_oof: np.ndarray  # out-of-fold probabilities of the best candidate
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0
    sample_rows: int = 0  # rows the candidates were compared on (all rows when not sampled)
    oof_seconds: float = 0.0  # the winner's out-of-fold pass on all rows, when sampled


def oof_scores(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    n_estimators: int,
    seed: int,
    n_jobs: int,
) -> np.ndarray:
    """Out-of-fold probabilities: each row scored by a model that never saw its user."""
    out = np.zeros(len(y), dtype=float)
    for fit_idx, val_idx in folds:
        model = build_pipeline(params, n_estimators=n_estimators, seed=seed, n_jobs=n_jobs)
        model.fit(X[fit_idx], y[fit_idx])
        out[val_idx] = positive_proba(model, X[val_idx])
    return out


def _score(
    y: np.ndarray, oof: np.ndarray, floor: float, z: float, groups: np.ndarray | None
) -> tuple[float, float]:
    try:
        recall = select_threshold(y, oof, floor, confidence_z=z, groups=groups).recall
    except NoThresholdMeetsFloor:
        recall = 0.0
    return recall, float(average_precision_score(y, oof)) if 0 < y.sum() < len(y) else 0.0


def search(
    X: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    floor: float,
    confidence_z: float,
    budget_s: float,
    n_estimators: int,
    seed: int = 0,
    n_jobs: int = 2,
    max_trials: int = 50,
    on_trial: Callable[[Trial], None] | None = None,
    groups: np.ndarray | None = None,
) -> SearchResult:
    """Try the defaults, then random candidates while the time budget allows (``groups``: each
    row's user, for the threshold's clustered margin)."""
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    trials: list[Trial] = []
    best: tuple[Trial, np.ndarray] | None = None
    candidates: list[dict[str, Any]] = [dict(DEFAULT_FOREST_PARAMS)]
    seen = {repr(sorted(candidates[0].items(), key=str))}
    while len(trials) < max_trials:
        if trials:
            elapsed = time.perf_counter() - started
            per_trial = elapsed / len(trials)
            if elapsed + per_trial > budget_s:
                break
            params = {k: v[int(rng.integers(len(v)))] for k, v in SEARCH_SPACE.items()}
            if repr(sorted(params.items(), key=str)) in seen:
                continue
            seen.add(repr(sorted(params.items(), key=str)))
            candidates.append(params)
        params = candidates[len(trials)]
        t0 = time.perf_counter()
        oof = oof_scores(params, X, y, folds, n_estimators=n_estimators, seed=seed, n_jobs=n_jobs)
        recall, pr_auc = _score(y, oof, floor, confidence_z, groups)
        trial = Trial(params, recall, pr_auc, time.perf_counter() - t0)
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        if best is None or trial.key > best[0].key:
            best = (trial, oof)
    assert best is not None
    return SearchResult(best[0].params, best[1], trials, time.perf_counter() - started)


def search_on_sample(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    max_rows: int,
    floor: float,
    confidence_z: float,
    budget_s: float,
    n_estimators: int,
    seed: int = 0,
    n_jobs: int = 2,
    on_trial: Callable[[Trial], None] | None = None,
) -> SearchResult:
    """:func:`search` on at most ``max_rows`` rows of whole users, then the winner's
    out-of-fold scores on all rows (``folds``), which is what ``best_oof`` holds."""
    sample = user_subsample(groups, max_rows, seed)
    if sample is not None:
        X_s, y_s, g_s = X[sample], y[sample], groups[sample]
        folds_s = user_folds(g_s, len(folds), seed)
    else:
        X_s, y_s, g_s, folds_s = X, y, groups, folds
    found = search(
        X_s,
        y_s,
        folds_s,
        floor=floor,
        confidence_z=confidence_z,
        budget_s=budget_s,
        n_estimators=n_estimators,
        seed=seed,
        n_jobs=n_jobs,
        on_trial=on_trial,
        groups=g_s,
    )
    found.sample_rows = len(y_s)
    if sample is not None:
        t0 = time.perf_counter()
        found.best_oof = oof_scores(
            found.best_params, X, y, folds, n_estimators=n_estimators, seed=seed, n_jobs=n_jobs
        )
        found.oof_seconds = time.perf_counter() - t0
    return found
