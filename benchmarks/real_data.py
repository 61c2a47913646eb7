"""The product's training on real data: PMData (16 people, Fitbit + PMSys), by person and time.

    .venv/bin/python benchmarks/real_data.py --pmdata /path/to/pmdata [--search-budget-s 30]

PMData is imported with ``fatigue_guard.ingest.import_fitbit`` (as ``fatigue-guard import
fitbit`` does). The split: people in ``--folds`` groups, and a date cutoff leaving the last
``--test-fraction`` of person-days after it. For each group, models learn from the *other*
people's days before the cutoff and are scored on the group's days from the cutoff on; the scores
of all groups are pooled, so every person's later days are scored once by models that saw neither
that person nor those days. (A person's earlier reports still feed their own
``recent_fatigue_rate_14d``, as a device would know them.)

Compared on that split:

* the product: ``train_model`` (search, threshold at the precision floor, its own time hold-out),
  registering nothing. When no threshold reaches ``--floor`` it refuses, as ``fatigue-guard
  train`` does; the refusal is reported and the model is retrained at the next of
  ``--fallback-floors`` so that its ranking can still be measured;
* logistic regression (median imputation with missing indicators, scaled, balanced classes);
* the person's own past event rate (all their earlier rows; the training event rate before
  they have any);
* a plain forest: 300 trees, balanced class weights, scikit-learn's own handling of missing
  values.

The baselines learn from the rows the product's final forest learned from (its time hold-out
excluded), so they differ from it in method, not in data. Figures: ROC-AUC and PR-AUC with 95 %
intervals from a bootstrap over people, recall at precision 0.75 / 0.6 / 0.5 (the best recall
whose observed precision on the pooled test rows reaches the floor: an oracle yardstick), and the
product's own operating point (its thresholds, chosen on training data only). Pooling the groups'
scores puts four models' scales on one axis, which can cost the pooled figures: the operating
point, with each group's own threshold, can beat every single threshold on the pooled scores.
The hyperparameter search is budgeted in seconds, so the product's figures move from run to run.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.ingest import import_fitbit
from fatigue_guard.model.pipeline import positive_proba
from fatigue_guard.model.threshold import NoThresholdMeetsFloor, recall_at_precision
from fatigue_guard.registry.models import TAG_TRAIN_CUTOFF
from fatigue_guard.training.train import train_model

FLOORS = (0.75, 0.6, 0.5)
PRODUCT = "product (`train_model`)"
MODELS = (
    PRODUCT,
    "logistic regression",
    "person's own past event rate",
    "forest, 300 trees, balanced",
)


@dataclass
class ProductRun:
    """``train_model`` walked down the floors: what it refused, and what it accepted."""

    refused: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    model: object | None = None
    threshold: float | None = None
    floor: float | None = None
    train_cutoff: pd.Timestamp | None = None  # the start of its own time hold-out

    def describe(self) -> str:
        parts = []
        if self.refused:
            floors = ", ".join(f"{f:g}" for f, _ in self.refused)
            best = max(a.get("best_precision", float("nan")) for _, a in self.refused)
            parts.append(f"refused at {floors} (best precision out of fold {best:.2f})")
        if self.floor is not None:
            parts.append(f"accepted at {self.floor:g}, threshold {self.threshold:.3f}")
        return "; ".join(parts)


@dataclass
class Fold:
    test_users: list[str]
    train_rows: int
    fit_rows: int
    test_rows: int
    test_events: int
    product: ProductRun


def _past_rate(frame: pd.DataFrame) -> pd.Series:
    """Each row: the share of the person's earlier rows that were events (NaN for the first)."""
    ordered = frame.sort_values(["user_id", "measured_at"], kind="mergesort")
    y = ordered[LABEL_COLUMN].astype(float)
    grouped = y.groupby(ordered["user_id"])
    earlier_events = grouped.cumsum() - y
    earlier_rows = grouped.cumcount()
    return (earlier_events / earlier_rows.replace(0, np.nan)).reindex(frame.index)


def _logistic(seed: int) -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True)),
            ("scale", StandardScaler()),
            ("lr", LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed)),
        ]
    )


def _forest(seed: int, n_jobs: int) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=300, class_weight="balanced", random_state=seed, n_jobs=n_jobs
    )


def _product(
    settings: Settings,
    train: pd.DataFrame,
    floors: list[float],
    args: argparse.Namespace,
    say: Callable[[str], None],
) -> ProductRun:
    """``train_model`` at each floor in turn until one is accepted."""
    import mlflow.sklearn

    run = ProductRun()
    for floor in floors:
        try:
            result = train_model(
                settings,
                train,
                precision_floor=floor,
                seed=args.seed,
                n_jobs=args.n_jobs,
                search_budget_s=args.search_budget_s,
            )
        except NoThresholdMeetsFloor as exc:
            run.refused.append((floor, exc.attainable))
            attainable = ", ".join(f"{k} {v:.2f}" for k, v in exc.attainable.items())
            say(f"  train_model refused at floor {floor:g}: {attainable}")
            continue
        run.model = mlflow.sklearn.load_model(result.model_uri)
        run.threshold, run.floor = result.threshold, floor
        run.train_cutoff = pd.Timestamp(result.version_tags[TAG_TRAIN_CUTOFF])
        say(f"  train_model accepted floor {floor:g}: threshold {result.threshold:.3f}")
        break
    return run


def _ci(
    y: np.ndarray,
    s: np.ndarray,
    users: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
    reps: int,
    seed: int,
) -> tuple[float, float]:
    """95 % interval of ``metric`` from resampling people (their rows travel together)."""
    rng = np.random.default_rng(seed)
    names, codes = np.unique(users, return_inverse=True)
    rows_of = [np.flatnonzero(codes == i) for i in range(len(names))]
    values = []
    for _ in range(reps):
        idx = np.concatenate([rows_of[i] for i in rng.integers(0, len(names), len(names))])
        if 0 < y[idx].sum() < len(idx):
            values.append(metric(y[idx], s[idx]))
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--pmdata", type=Path, required=True, help="PMData folder (p01 ... p16)")
    parser.add_argument("--timezone", default="Europe/Oslo", help="the participants' time zone")
    parser.add_argument("--folds", type=int, default=4, help="groups of people")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="person-days after cutoff")
    parser.add_argument("--floor", type=float, default=0.75, help="the product's precision floor")
    parser.add_argument("--fallback-floors", type=float, nargs="*", default=[0.6, 0.5, 0.4, 0.3])
    parser.add_argument("--search-budget-s", type=float, default=30.0)
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of people")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    started = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {msg}", flush=True)

    imported = import_fitbit(args.pmdata, timezone=args.timezone)
    frame = imported.table.sort_values(["measured_at", "user_id"]).reset_index(drop=True)
    say(
        f"imported {len(frame)} person-days of {frame['user_id'].nunique()} people, "
        f"{frame[LABEL_COLUMN].mean():.1%} events ({imported.label_rule}); "
        f"{len(imported.rejected)} reports are not rows"
    )
    past_rate = _past_rate(frame)
    X = feature_matrix(frame)
    y = frame[LABEL_COLUMN].to_numpy(dtype=bool)
    users = frame["user_id"].to_numpy(dtype=str)
    cutoff = frame["measured_at"].quantile(1.0 - args.test_fraction).floor("D")
    after = (frame["measured_at"] >= cutoff).to_numpy()
    floors = [args.floor, *args.fallback_floors]

    scores = {name: np.full(len(frame), np.nan) for name in MODELS}
    alerts = np.zeros(len(frame), dtype=bool)
    folds: list[Fold] = []
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        say("the whole table, as `fatigue-guard train --precision-floor F` would see it")
        whole = _product(settings, frame, floors, args, say)

        people = np.unique(users)
        splitter = GroupKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
        for k, (_, test_people) in enumerate(splitter.split(people, groups=people)):
            held = np.isin(users, people[test_people])
            train_mask, test_mask = ~held & ~after, held & after
            train = frame[train_mask]
            say(
                f"fold {k + 1}/{args.folds}: test people {', '.join(people[test_people])}; "
                f"{train_mask.sum()} training rows, {test_mask.sum()} test rows"
            )
            product = _product(settings, train, floors, args, say)
            fit_mask = train_mask.copy()
            if product.train_cutoff is not None:
                fit_mask &= (frame["measured_at"] < product.train_cutoff).to_numpy()
            X_test = X[test_mask]
            if product.model is not None:
                p = positive_proba(product.model, X_test)
                scores[PRODUCT][test_mask] = p
                alerts[test_mask] = p >= product.threshold
            X_fit, y_fit = X[fit_mask], y[fit_mask]
            scores["logistic regression"][test_mask] = (
                _logistic(args.seed).fit(X_fit, y_fit).predict_proba(X_test)[:, 1]
            )
            forest = _forest(args.seed, args.n_jobs).fit(X_fit, y_fit)
            scores["forest, 300 trees, balanced"][test_mask] = forest.predict_proba(X_test)[:, 1]
            scores["person's own past event rate"][test_mask] = (
                past_rate[test_mask].fillna(y_fit.mean()).to_numpy()
            )
            folds.append(
                Fold(
                    test_users=list(people[test_people]),
                    train_rows=int(train_mask.sum()),
                    fit_rows=int(fit_mask.sum()),
                    test_rows=int(test_mask.sum()),
                    test_events=int(y[test_mask].sum()),
                    product=product,
                )
            )

    test = after & np.isin(users, [u for f in folds for u in f.test_users])
    y_t, users_t = y[test], users[test]
    today = datetime.now(UTC).date().isoformat()
    print()
    print(
        f"PMData, {today}: {len(frame)} person-days, {len(people)} people; test = every "
        f"person's days from {cutoff.date()} on ({test.sum()} rows, {y_t.mean():.1%} events), "
        f"each scored by models trained on the other people's days before it."
    )
    print(f"`train` on the whole table: {whole.describe()}.")
    print()
    print(
        "| model | ROC-AUC (95 % CI) | PR-AUC (95 % CI) | recall @ precision 0.75 | @ 0.6 "
        "| @ 0.5 | at its operating point |"
    )
    print("|---|---|---|---:|---:|---:|---|")
    for name in MODELS:
        s = scores[name][test]
        if np.isnan(s).any():
            print(f"| {name} | refused in some folds at every floor | | | | | |")
            continue
        roc, pr = roc_auc_score(y_t, s), average_precision_score(y_t, s)
        roc_ci = _ci(y_t, s, users_t, roc_auc_score, args.bootstrap, args.seed)
        pr_ci = _ci(y_t, s, users_t, average_precision_score, args.bootstrap, args.seed)
        recalls = [recall_at_precision(y_t, s, f) for f in FLOORS]
        point = ""
        if name == PRODUCT:
            a = alerts[test]
            tp = int((a & y_t).sum())
            used = sorted({f.product.floor for f in folds if f.product.floor is not None})
            point = (
                f"floor {'/'.join(f'{u:g}' for u in used)}: precision "
                f"{tp / max(a.sum(), 1):.2f}, recall {tp / max(y_t.sum(), 1):.2f}, "
                f"{a.mean():.0%} of days alerted"
            )
        print(
            f"| {name} | {roc:.3f} ({roc_ci[0]:.2f}-{roc_ci[1]:.2f}) "
            f"| {pr:.3f} ({pr_ci[0]:.2f}-{pr_ci[1]:.2f}) "
            + "".join(f"| {r:.3f} " for r in recalls)
            + f"| {point} |"
        )
    print(f"| (no skill: event rate) | 0.500 | {y_t.mean():.3f} | | | | |")
    print()
    print(
        "| fold | test people | training rows (product's final fit) | test rows (events) "
        "| product |"
    )
    print("|---:|---|---:|---:|---|")
    for k, f in enumerate(folds, 1):
        outcome = f.product.describe()
        print(
            f"| {k} | {', '.join(f.test_users)} | {f.train_rows} ({f.fit_rows}) "
            f"| {f.test_rows} ({f.test_events}) | {outcome} |"
        )
    say("done")


if __name__ == "__main__":
    main()
