"""Whether a joint (multivariate) test on each person's mean vector finds older joiners where the
per-feature tests of ``benchmarks/joiner_power.py`` do not.

    .venv/bin/python benchmarks/joint_joiner_power.py [--seeds 10] [--people 90]
        [--permutations 499]

The joiners of ``tests/monitoring/pmdata.py`` differ in two features at once (RMSSD 40 % lower and
resting HR 6 bpm higher in the same people), so a test on people's mean *vectors* could in
principle pool both. For each seed, the ``older_joiners`` window and two stationary windows (a
tenth of the people replaced, all of them) are compared with their reference on per-person mean
vectors of the profile's physiology features (log RMSSD, resting HR, sleep efficiency, sleep
duration; people with the profile's minimum number of values in every one of them). Tests:

* ``joint tail``: the share of window people whose Mahalanobis distance from the reference
  people's centre exceeds the 90th percentile of the reference's per-person *weekly* vectors
  (each week's distance computed leaving its own person out of the centre and covariance, so that
  new people and reference people are measured alike), beta-binomial with the reference weeks'
  effective size (weeks over their design effect by person);
* ``energy``: the energy distance between the window's and the reference's per-person mean
  vectors (standardised by the reference people's sd), permutation p-value;
* ``Hotelling``: Hotelling's T^2 on the mean of per-person mean vectors.

Each is also run on the two features the joiners change (``... 2``): a choice that knows the
answer, to bound what any pre-specified joint test could gain. Prints, per window kind and test,
the smallest, median and largest p-value and in how many seeds p <= 0.005 (the level a single
pre-specified primary test would have) and p <= 0.01; then, per seed, the reference people's
correlation of log RMSSD with resting HR and the joiners' shift in sd units and in Mahalanobis
units (the length a joint test sees).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.*

from tests.monitoring.pmdata import RealConfig, load_person_days, real_cohort

from fatigue_guard.model.profile import PERSON_BLOCK_DAYS, PHYSIOLOGY_FEATURES
from fatigue_guard.model.stats import beta_binomial_sf, design_effect

JOINED = ("hrv_rmssd_ms", "resting_hr_bpm")
TAIL = 0.1
PRIMARY_ALPHA = 0.005


def _levels(frame: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    """Raw level features, RMSSD on the log scale (its between-person spread is multiplicative)."""
    out = frame[["user_id", "measured_at", *features]].copy()
    if "hrv_rmssd_ms" in features:
        out["hrv_rmssd_ms"] = np.log(out["hrv_rmssd_ms"])
    return out


def _week(frame: pd.DataFrame) -> np.ndarray:
    stamps = pd.to_datetime(frame["measured_at"], utc=True)
    days = ((stamps - stamps.min()) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    return np.floor(days / PERSON_BLOCK_DAYS)


def min_values(reference: pd.DataFrame) -> int:
    """The profile's rule: half the rows of the median reference person-week, at least 2."""
    rows = reference.groupby([reference["user_id"], _week(reference)]).size()
    return max(2, math.ceil(float(np.median(rows)) / 2))


def mean_vectors(
    frame: pd.DataFrame, features: tuple[str, ...], minimum: int, weekly: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per-person (or per-person-week) mean vectors of people with ``minimum`` values of every
    feature, and the person of each vector."""
    levels = _levels(frame, features)
    keys: list[pd.Series | np.ndarray] = [levels["user_id"]]
    if weekly:
        keys.append(_week(levels))
    grouped = levels.groupby(keys)[list(features)]
    counts, means = grouped.count(), grouped.mean()
    kept = means[(counts >= minimum).all(axis=1)]
    return kept.to_numpy(dtype=np.float64), kept.index.get_level_values(0).to_numpy()


def _distances(x: np.ndarray, centre: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    z = x - centre
    return np.einsum("ij,ij->i", z, np.linalg.solve(covariance, z.T).T)


def joint_tail_p(
    people: np.ndarray, owners: np.ndarray, weeks: np.ndarray, week_owner: np.ndarray, x: np.ndarray
) -> float:
    reference = np.empty(len(weeks))
    for person in np.unique(week_owner):
        others = people[owners != person]
        mine = week_owner == person
        reference[mine] = _distances(weeks[mine], others.mean(0), np.cov(others.T))
    edge = float(np.quantile(reference, 1 - TAIL))
    outside = reference > edge
    codes = pd.factorize(week_owner)[0]
    n_eff = len(reference) / design_effect(codes, outside.astype(np.float64), int(codes.max()) + 1)
    share = float(outside.mean())
    count = int((_distances(x, people.mean(0), np.cov(people.T)) > edge).sum())
    return beta_binomial_sf(count, len(x), share * n_eff + 0.5, (1 - share) * n_eff + 0.5)


def energy_p(y: np.ndarray, x: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    pooled = (np.vstack([y, x]) - y.mean(0)) / y.std(0, ddof=1)
    gaps = np.sqrt(((pooled[:, None, :] - pooled[None, :, :]) ** 2).sum(-1))
    n = len(y)

    def statistic(order: np.ndarray) -> float:
        a, b = order[:n], order[n:]
        between = gaps[np.ix_(a, b)].mean()
        return float(2 * between - gaps[np.ix_(a, a)].mean() - gaps[np.ix_(b, b)].mean())

    order = np.arange(len(pooled))
    observed = statistic(order)
    beyond = sum(statistic(rng.permutation(order)) >= observed for _ in range(permutations))
    return (1 + beyond) / (1 + permutations)


def hotelling_p(y: np.ndarray, x: np.ndarray) -> float:
    n, m, k = len(y), len(x), y.shape[1]
    pooled = ((n - 1) * np.cov(y.T) + (m - 1) * np.cov(x.T)) / (n + m - 2)
    d = x.mean(0) - y.mean(0)
    t2 = n * m / (n + m) * float(d @ np.linalg.solve(pooled, d))
    return float(stats.f.sf((n + m - k - 1) / (k * (n + m - 2)) * t2, k, n + m - k - 1))


def joiner_geometry(reference: pd.DataFrame, window: pd.DataFrame, minimum: int) -> str:
    """What a joint test sees of the joiners: their shift per feature in sd of the reference
    people, and its Mahalanobis length against the largest single-feature one."""
    people, _ = mean_vectors(reference, JOINED, minimum, weekly=False)
    current, owner = mean_vectors(window, JOINED, minimum, weekly=False)
    joiner = np.char.find(owner.astype(str), "-j") >= 0
    shift = current[joiner].mean(0) - current[~joiner].mean(0)
    sd = people.std(0, ddof=1)
    r = float(np.corrcoef(people.T)[0, 1])
    length = math.sqrt(float(shift @ np.linalg.solve(np.cov(people.T), shift)))
    return (
        f"r(log RMSSD, resting HR) {r:+.2f}; joiners' shift {shift[0] / sd[0]:+.2f} sd, "
        f"{shift[1] / sd[1]:+.2f} sd; Mahalanobis {length:.2f} "
        f"(largest single feature {float(np.max(np.abs(shift / sd))):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--people", type=int, default=90)
    parser.add_argument("--permutations", type=int, default=499)
    args = parser.parse_args()
    started = time.perf_counter()
    days = load_person_days()
    rng = np.random.default_rng(0)
    rows, notes = [], []
    for situation, churn in (("older_joiners", 0.1), ("none", 0.1), ("none", 1.0)):
        for seed in range(args.seeds):
            cohort = real_cohort(RealConfig(situation, seed, people=args.people, churn=churn), days)
            minimum = min_values(cohort.reference)
            row: dict[str, str | float] = {"window": f"{situation} (churn {churn:g})"}
            for label, features in (("", PHYSIOLOGY_FEATURES), (" 2", JOINED)):
                people, owners = mean_vectors(cohort.reference, features, minimum, weekly=False)
                weeks, week_owner = mean_vectors(cohort.reference, features, minimum, weekly=True)
                x, _ = mean_vectors(cohort.window, features, minimum, weekly=False)
                row[f"joint tail{label}"] = joint_tail_p(people, owners, weeks, week_owner, x)
                row[f"energy{label}"] = energy_p(people, x, args.permutations, rng)
                row[f"Hotelling{label}"] = hotelling_p(people, x)
            rows.append(row)
            if situation == "older_joiners":
                geometry = joiner_geometry(cohort.reference, cohort.window, minimum)
                notes.append(f"seed {seed}: {geometry}")
    table = pd.DataFrame(rows).melt(id_vars="window", var_name="test", value_name="p")
    summary = table.groupby(["window", "test"], sort=False)["p"].agg(
        min="min",
        median="median",
        max="max",
        primary=lambda p: (p <= PRIMARY_ALPHA).sum(),
        at_001=lambda p: (p <= 0.01).sum(),
    )
    print(f"{args.people} people, {args.seeds} seeds, {args.permutations} permutations")
    print("| window | test | min p | median p | max p | p <= 0.005 | p <= 0.01 |")
    print("|---|---|---|---|---|---|---|")
    for (window, test), r in summary.iterrows():
        print(
            f"| {window} | {test} | {r['min']:.2g} | {r['median']:.2g} | {r['max']:.2g} "
            f"| {r['primary']:.0f} | {r['at_001']:.0f} |"
        )
    for note in notes:
        print(note)
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
