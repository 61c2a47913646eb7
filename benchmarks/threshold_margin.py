"""Does the threshold's precision margin hold on later days? Plain Wilson vs clustered by user.

For each simulated cohort (seeded), the threshold is chosen on out-of-fold-by-user scores of the
training period exactly as training does, once with the plain Wilson bound and once with the
bound on effective alerts (``select_threshold(groups=...)``), then the final forest is scored on
the held-out most recent days. Prints held-out precision and recall for both rules.

    .venv/bin/python benchmarks/threshold_margin.py [--seeds 6] [--users 300] [--days 30]
"""

from __future__ import annotations

import argparse

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.model.pipeline import build_pipeline, positive_proba
from fatigue_guard.model.threshold import select_threshold
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from fatigue_guard.training.search import oof_scores
from fatigue_guard.training.splits import time_split, user_folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    settings = Settings()
    floor, z = settings.precision_floor, settings.threshold_confidence_z
    print("| seed | rule | threshold | design effect | held-out precision | held-out recall |")
    print("|---:|---|---:|---:|---:|---:|")
    below = {"plain": 0, "clustered": 0}
    for seed in range(args.seeds):
        frame = simulate_cohort(CohortConfig(users=args.users, days=args.days, seed=seed))
        X, y = feature_matrix(frame), frame[LABEL_COLUMN].to_numpy(dtype=bool)
        users = frame["user_id"].to_numpy()
        split = time_split(frame["measured_at"], settings.holdout_fraction)
        X_tr, y_tr, g_tr = X[split.train], y[split.train], users[split.train]
        folds = user_folds(g_tr, settings.cv_folds, seed)
        n = settings.n_estimators
        oof = oof_scores({}, X_tr, y_tr, folds, n_estimators=n, seed=seed, n_jobs=2)
        model = build_pipeline({}, n_estimators=n, seed=seed, n_jobs=2).fit(X_tr, y_tr)
        p_ho, y_ho = positive_proba(model, X[split.holdout]), y[split.holdout]
        for rule, groups in (("plain", None), ("clustered", g_tr)):
            choice = select_threshold(y_tr, oof, floor, confidence_z=z, groups=groups)
            alert = p_ho >= choice.threshold
            precision = (alert & y_ho).sum() / max(alert.sum(), 1)
            recall = (alert & y_ho).sum() / max(y_ho.sum(), 1)
            below[rule] += int(precision < floor)
            print(
                f"| {seed} | {rule} | {choice.threshold:.3f} | {choice.design_effect:.2f} "
                f"| {precision:.3f} | {recall:.3f} |",
                flush=True,
            )
    runs = args.seeds
    print(
        f"\nheld-out precision below the {floor:g} floor: plain {below['plain']}/{runs}, "
        f"clustered {below['clustered']}/{runs}"
    )


if __name__ == "__main__":
    main()
