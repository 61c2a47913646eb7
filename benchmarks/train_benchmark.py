"""Training cost by row count: wall time per phase and peak resident memory.

    .venv/bin/python benchmarks/train_benchmark.py                    # 50k, 200k, 1M rows
    .venv/bin/python benchmarks/train_benchmark.py --rows 50000 --search-budget-s 0

"search" compares candidates on a sample of whole users (``FATIGUE_GUARD_SEARCH_MAX_ROWS``);
"OOF pass" is the winner's out-of-fold scoring on every training row (0 when nothing was sampled);
"forward" the two forward-chained fits the threshold is also chosen on.
Each size runs in a fresh subprocess so that peak RSS (``ru_maxrss``) belongs to that size alone.
Data come from the cohort simulator (4 moments/day, 30 days; users scale with rows). MLflow
writes to a throw-away HOME; nothing is registered.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAYS, MOMENTS = 30, 4


def run_one(rows: int, budget: float, n_jobs: int, seed: int) -> dict[str, float]:
    from fatigue_guard.config import Settings
    from fatigue_guard.lifecycle.registration import train_and_register
    from fatigue_guard.model.threshold import NoThresholdMeetsFloor
    from fatigue_guard.simulation import simulate_cohort
    from fatigue_guard.simulation.config import CohortConfig

    users = max(2, rows // (DAYS * MOMENTS))
    t0 = time.perf_counter()
    frame = simulate_cohort(
        CohortConfig(users=users, days=DAYS, moments_per_day=MOMENTS, seed=seed)
    )
    simulate_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as home:
        t0 = time.perf_counter()
        out: dict[str, float] = {"rows": len(frame), "simulate_s": simulate_s}
        try:
            result = train_and_register(
                Settings(home=Path(home)),
                frame,
                seed=seed,
                n_jobs=n_jobs,
                search_budget_s=budget,
                register=False,
            )
            out.update(result.timings)
            out["holdout_precision"] = result.metrics["holdout_time"]["precision"]
            out["holdout_recall"] = result.metrics["holdout_time"]["recall"]
        except NoThresholdMeetsFloor:
            out["no_threshold"] = 1.0
        out["train_total_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    parser.add_argument("--search-budget-s", type=float, default=60.0)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.rows[0], args.search_budget_s, args.n_jobs, args.seed)))
        return
    columns = (
        "rows",
        "simulate",
        "search",
        "OOF pass",
        "forward",
        "final fit",
        "artifacts",
        "total",
        "peak RSS",
    )
    print(" ".join(f"{c:>9}" for c in columns))
    for rows in args.rows:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                "--rows",
                str(rows),
                "--search-budget-s",
                str(args.search_budget_s),
                "--n-jobs",
                str(args.n_jobs),
                "--seed",
                str(args.seed),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(child.stdout.strip().splitlines()[-1])
        nan = float("nan")
        cells = [
            f"{int(r['rows']):,}",
            f"{r['simulate_s']:.1f}s",
            f"{r.get('search_s', nan):.1f}s",
            f"{r.get('oof_s', nan):.1f}s",
            f"{r.get('forward_s', nan):.1f}s",
            f"{r.get('final_fit_s', nan):.1f}s",
            f"{r.get('artifacts_s', nan):.1f}s",
            f"{r['train_total_s']:.1f}s",
            f"{r['peak_rss_mb']:.0f}MB",
        ]
        print(" ".join(f"{c:>9}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
