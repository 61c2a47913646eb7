"""Does the threshold's precision hold on later days? Across users only vs across users and time.

For each simulated cohort (seeded), the threshold is chosen on the training period exactly as
training does, twice in the same run:

* ``across users``: the clustered Wilson bound on out-of-fold-by-user scores alone;
* ``users + time``: the bound must also clear the floor on forward-chained scores (a model fitted
  on earlier days scoring the next block), :func:`select_threshold_for_views`, what training
  uses.

Then the final forest (fitted on the whole training period) scores the held-out most recent
days, and the table shows each rule's threshold, held-out precision and recall side by side.

    .venv/bin/python benchmarks/threshold_margin.py [--seeds 10] [--users 300] [--days 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.model.pipeline import build_pipeline, positive_proba
from fatigue_guard.model.threshold import (
    NoThresholdMeetsFloor,
    select_threshold,
    select_threshold_for_views,
)
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from fatigue_guard.training.search import oof_scores
from fatigue_guard.training.splits import time_split, user_folds
from fatigue_guard.training.threshold_views import threshold_views


def _held_out(scores: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float, float]:
    alert = scores >= threshold
    hits = float((alert & y).sum())
    return hits / max(int(alert.sum()), 1), hits / max(int(y.sum()), 1)


def _cell(threshold: float | None, scores: np.ndarray, y: np.ndarray, floor: float) -> str:
    if threshold is None:
        return "none meets the floor | - | -"
    precision, recall = _held_out(scores, y, threshold)
    mark = " **below**" if precision < floor else ""
    return f"{threshold:.3f} | {precision:.3f}{mark} | {recall:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    settings = Settings()
    floor, z, n = settings.precision_floor, settings.threshold_confidence_z, settings.n_estimators
    print(
        "| seed | across users: threshold | held-out precision | recall "
        "| users + time: threshold | held-out precision | recall | binding view | extra fit s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    below = {"old": 0, "new": 0}
    recalls: dict[str, list[float]] = {"old": [], "new": []}
    for seed in range(args.seeds):
        frame = simulate_cohort(CohortConfig(users=args.users, days=args.days, seed=seed))
        X, y = feature_matrix(frame), frame[LABEL_COLUMN].to_numpy(dtype=bool)
        users = frame["user_id"].to_numpy()
        split = time_split(frame["measured_at"], settings.holdout_fraction)
        X_tr, y_tr, g_tr = X[split.train], y[split.train], users[split.train]
        folds = user_folds(g_tr, settings.cv_folds, seed)
        oof = oof_scores({}, X_tr, y_tr, folds, n_estimators=n, seed=seed, n_jobs=2)
        model = build_pipeline({}, n_estimators=n, seed=seed, n_jobs=2).fit(X_tr, y_tr)
        p_ho, y_ho = positive_proba(model, X[split.holdout]), y[split.holdout]

        old: float | None
        new: float | None
        try:
            old = select_threshold(y_tr, oof, floor, confidence_z=z, groups=g_tr).threshold
        except NoThresholdMeetsFloor:
            old = None
        t0 = time.perf_counter()
        views = threshold_views(
            {},
            X_tr,
            y_tr,
            g_tr,
            frame["measured_at"].iloc[split.train],
            oof,
            block_fraction=settings.holdout_fraction,
            n_estimators=n,
            seed=seed,
            n_jobs=2,
        )
        extra_s = time.perf_counter() - t0
        binding = "-"
        try:
            chosen = select_threshold_for_views(views, floor, confidence_z=z)
            new, binding = chosen.choice.threshold, chosen.binding
        except NoThresholdMeetsFloor:
            new = None
        for rule, t in (("old", old), ("new", new)):
            if t is not None:
                precision, recall = _held_out(p_ho, y_ho, t)
                below[rule] += int(precision < floor)
                recalls[rule].append(recall)
        print(
            f"| {seed} | {_cell(old, p_ho, y_ho, floor)} | {_cell(new, p_ho, y_ho, floor)} "
            f"| {binding} | {extra_s:.1f} |",
            flush=True,
        )
    runs = args.seeds
    print(
        f"\nheld-out precision below the {floor:g} floor: across users {below['old']}/{runs}, "
        f"users + time {below['new']}/{runs}; mean held-out recall "
        f"{np.mean(recalls['old']):.3f} vs {np.mean(recalls['new']):.3f}"
    )


if __name__ == "__main__":
    main()
