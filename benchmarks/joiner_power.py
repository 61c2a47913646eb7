"""How much evidence the per-person means carry when a group of older people joins: candidate
tests' p-values on the real-data cohorts, to choose a test and a family structure by measurement.

    .venv/bin/python benchmarks/joiner_power.py [--seeds 10] [--people 90] [--feature hrv_rmssd_ms]

For each seed, the ``older_joiners`` window and two stationary windows (a tenth of the people
replaced, all of them) of ``tests/monitoring/pmdata.py`` are compared with their reference, on
the feature's per-person means (people with the profile's minimum number of values), against the
reference's per-person *weekly* means (a live window is a week). The reference weeks of one person
are correlated, so every test uses the reference's effective size: its weeks over their design
effect by person (about the number of reference people). Tests, each one-sided towards the
joiners (lower RMSSD, higher resting HR) unless said otherwise:

* ``tail 10 %``: the monitor's tail test, people beyond the reference's 10 % edge, beta-binomial;
* ``tail 25 %``: the same at the reference's quartile;
* ``rank``: Mann-Whitney's AUC, normal approximation with the effective reference size;
* ``AD``: two-sample Anderson-Darling (two-sided), asymptotic distribution, effective size;
* ``Welch``: the mean of per-person means (two-sided), on the reference's per-person means.

Prints, per window kind and test, the smallest, median and largest p-value over the seeds, and in
how many seeds p <= 0.01 (what a test would need even as the run's only test at ``MONITOR_FDR``)
and p <= 0.01 / 18 (one test per feature).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.*

from tests.monitoring.pmdata import RealConfig, load_person_days, real_cohort

from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.model.stats import beta_binomial_sf, design_effect

FEATURES_PER_RUN = 18


def weekly_means(reference: pd.DataFrame, name: str, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-person weekly means of the reference and the person of each (codes)."""
    stamps = pd.to_datetime(reference["measured_at"], utc=True)
    days = ((stamps - stamps.min()) / pd.Timedelta(days=1)).to_numpy()
    frame = pd.DataFrame(
        {"user": reference["user_id"], "week": np.floor(days / 7), "value": reference[name]}
    ).dropna()
    weeks = frame.groupby(["user", "week"])["value"].agg(["count", "mean"]).reset_index()
    weeks = weeks[weeks["count"] >= minimum]
    return weeks["mean"].to_numpy(), pd.factorize(weeks["user"])[0]


def person_means(frame: pd.DataFrame, name: str, minimum: int) -> np.ndarray:
    people = frame.dropna(subset=[name]).groupby("user_id")[name].agg(["count", "mean"])
    return people[people["count"] >= minimum]["mean"].to_numpy()


def effective_size(values: np.ndarray, owner: np.ndarray, indicator: np.ndarray) -> float:
    return len(values) / design_effect(owner, indicator.astype(np.float64), int(owner.max()) + 1)


def tail_p(x: np.ndarray, y: np.ndarray, owner: np.ndarray, share: float, sign: int) -> float:
    edge = float(np.quantile(y, share if sign < 0 else 1 - share))
    outside_ref = y < edge if sign < 0 else y > edge
    n_eff, ref_share = effective_size(y, owner, outside_ref), float(outside_ref.mean())
    count = int((x < edge).sum() if sign < 0 else (x > edge).sum())
    return beta_binomial_sf(count, len(x), ref_share * n_eff + 0.5, (1 - ref_share) * n_eff + 0.5)


def rank_p(x: np.ndarray, y: np.ndarray, owner: np.ndarray, sign: int) -> float:
    n_eff = len(y) / design_effect(owner, stats.rankdata(y), int(owner.max()) + 1)
    auc = stats.mannwhitneyu(x, y).statistic / (len(x) * len(y))
    se = math.sqrt((len(x) + n_eff + 1) / (12 * len(x) * n_eff))
    return float(stats.norm.sf(sign * (auc - 0.5) / se))


def _ad_sf(z: float) -> float:
    """Upper tail of the asymptotic Anderson-Darling distribution (Marsaglia & Marsaglia 2004)."""
    if z <= 0:
        return 1.0
    if z < 2:
        poly = np.polyval([0.00168691, -0.011672, 0.0347962, -0.0649821, 0.247105, 2.00012], z)
        return 1 - math.exp(-1.2337141 / z) / math.sqrt(z) * poly
    g = np.polyval([-0.0003146, 0.008056, -0.082433, 0.43424, -2.30695, 1.0776], z)
    return -math.expm1(-math.exp(g))


def ad_p(x: np.ndarray, y: np.ndarray, owner: np.ndarray) -> float:
    median = y < np.median(y)
    n, m = len(x), effective_size(y, owner, median)
    points = np.concatenate([x, y])
    order = np.argsort(points, kind="stable")
    grid = points[order]
    f = np.searchsorted(np.sort(x), grid, side="right") / len(x)
    g = np.searchsorted(np.sort(y), grid, side="right") / len(y)
    wx, wy = n / (n + m), m / (n + m)
    h = wx * f + wy * g
    mass = np.concatenate([np.full(len(x), wx / len(x)), np.full(len(y), wy / len(y))])[order]
    inside = (h > 0) & (h < 1)  # the pooled CDF's last point carries no weight
    weight = h[inside] * (1 - h[inside])
    statistic = n * m / (n + m) * float(np.sum((f - g)[inside] ** 2 / weight * mass[inside]))
    return _ad_sf(statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--people", type=int, default=90)
    parser.add_argument("--feature", default="hrv_rmssd_ms")
    args = parser.parse_args()
    sign = -1 if args.feature.startswith("hrv") else 1
    days = load_person_days()
    rows = []
    for situation, churn in (("older_joiners", 0.1), ("none", 0.1), ("none", 1.0)):
        for seed in range(args.seeds):
            config = RealConfig(situation, seed, people=args.people, churn=churn)
            cohort = real_cohort(config, days)
            minimum = ReferenceProfile.from_frame(cohort.reference).person_min_values
            y, owner = weekly_means(cohort.reference, args.feature, minimum)
            x = person_means(cohort.window, args.feature, minimum)
            ref_people = person_means(cohort.reference, args.feature, minimum)
            rows.append(
                {
                    "window": f"{situation} (churn {churn:g})",
                    "tail 10 %": tail_p(x, y, owner, 0.1, sign),
                    "tail 25 %": tail_p(x, y, owner, 0.25, sign),
                    "rank": rank_p(x, y, owner, sign),
                    "AD": ad_p(x, y, owner),
                    "Welch": float(stats.ttest_ind(x, ref_people, equal_var=False).pvalue),
                }
            )
    table = pd.DataFrame(rows).melt(id_vars="window", var_name="test", value_name="p")
    summary = table.groupby(["window", "test"], sort=False)["p"].agg(
        min="min",
        median="median",
        max="max",
        at_001=lambda p: (p <= 0.01).sum(),
        at_001_18=lambda p: (p <= 0.01 / FEATURES_PER_RUN).sum(),
    )
    print(f"{args.feature}, {args.people} people, {args.seeds} seeds")
    print("| window | test | min p | median p | max p | p <= 0.01 | p <= 0.01/18 |")
    print("|---|---|---|---|---|---|---|")
    for (window, test), r in summary.iterrows():
        print(
            f"| {window} | {test} | {r['min']:.2g} | {r['median']:.2g} | {r['max']:.2g} "
            f"| {r['at_001']:.0f} | {r['at_001_18']:.0f} |"
        )


if __name__ == "__main__":
    main()
