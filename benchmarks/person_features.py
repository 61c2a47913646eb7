"""Do person features help on real data? PMData, by person and time, several seeds.

    .venv/bin/python benchmarks/person_features.py --pmdata /path/to/pmdata [--seeds 5]

The split is that of ``benchmarks/real_data.py``: people in ``--folds`` groups and a date cutoff
leaving the last ``--test-fraction`` of person-days after it; each group's days from the cutoff on
are scored by models fitted on the *other* people's days before it. Each seed draws other groups
(and seeds the models), so the spread over seeds shows how much the figures depend on who lands
in which group.

Feature sets, each added to the contract's features (``feature_matrix``), all causal (a row sees
only the person's earlier rows, as a device would):

* **history**: days since the person's last reported event (missing before the first), the
  last report (1 event / 0 not; missing for the first row), and the person's whole-history event
  rate shrunk toward the population's (``(events + K * p) / (reports + K)``, ``K`` =
  :data:`SHRINK_REPORTS`, ``p`` the fitting rows' event rate);
* **normalised**: each physiology feature as today's value against the person's own earlier
  values, ``(x - mean) / sd`` over at least :data:`MIN_HISTORY` earlier rows (missing before).

Models: logistic regression (median imputation with missing indicators, scaled, balanced) and a
forest (300 trees, balanced, scikit-learn's own missing-value handling), as in ``real_data.py``.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
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

from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.ingest import import_fitbit
from fatigue_guard.model.threshold import recall_at_precision

FLOORS = (0.75, 0.6, 0.5)
SHRINK_REPORTS = 10.0
MIN_HISTORY = 5
PHYSIOLOGY = (
    "sleep_duration_h",
    "sleep_efficiency",
    "resting_hr_bpm",
    "hours_awake",
    "waso_min",
    "awakenings",
    "deep_sleep_pct",
    "rem_sleep_pct",
)
SETS = ("contract", "+ history", "+ normalised", "+ history + normalised")


def history_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Per row, from the person's earlier rows only: days since the last event, the last
    report, and the counts the shrunken rate is computed from (``events``, ``reports``)."""
    ordered = frame.sort_values(["user_id", "measured_at"], kind="mergesort")
    y = ordered[LABEL_COLUMN].astype(float)
    by = ordered["user_id"]
    events = y.groupby(by).cumsum() - y
    reports = y.groupby(by).cumcount().astype(float)
    last = y.groupby(by).shift(1)
    event_at = ordered["measured_at"].where(y == 1)
    last_event_at = event_at.groupby(by).shift(1).groupby(by).ffill()
    days_since = (ordered["measured_at"] - last_event_at).dt.total_seconds() / 86400
    out = pd.DataFrame(
        {
            "days_since_event": days_since,
            "last_report": last,
            "events": events,
            "reports": reports,
        },
        index=ordered.index,
    )
    return out.reindex(frame.index)


def normalised_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Each physiology feature against the person's own earlier values (z-score, causal)."""
    ordered = frame.sort_values(["user_id", "measured_at"], kind="mergesort")
    by = ordered["user_id"]
    cols = {}
    for name in PHYSIOLOGY:
        x = ordered[name].astype(float)
        earlier = x.groupby(by).shift(1)
        grouped = earlier.groupby(by)
        mean = grouped.transform(lambda s: s.expanding(MIN_HISTORY).mean())
        sd = grouped.transform(lambda s: s.expanding(MIN_HISTORY).std())
        cols[f"{name}_z"] = (x - mean) / sd.where(sd > 0)
    return pd.DataFrame(cols, index=ordered.index).reindex(frame.index)


def _matrix(
    base: np.ndarray, history: pd.DataFrame, normalised: pd.DataFrame, name: str, p: float
) -> np.ndarray:
    parts = [base]
    if "history" in name:
        rate = (history["events"] + SHRINK_REPORTS * p) / (history["reports"] + SHRINK_REPORTS)
        parts.append(history[["days_since_event", "last_report"]].to_numpy(dtype=float))
        parts.append(rate.to_numpy(dtype=float)[:, None])
    if "normalised" in name:
        parts.append(normalised.to_numpy(dtype=float))
    return np.hstack(parts)


def _logistic(seed: int) -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True)),
            ("scale", StandardScaler()),
            ("lr", LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)),
        ]
    )


def _forest(seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=300, class_weight="balanced", random_state=seed, n_jobs=2
    )


MODELS: dict[str, Callable[[int], object]] = {
    "logistic regression": _logistic,
    "forest": _forest,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pmdata", type=Path, required=True)
    parser.add_argument("--timezone", default="Europe/Oslo")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    imported = import_fitbit(args.pmdata, timezone=args.timezone)
    frame = imported.table.sort_values(["measured_at", "user_id"]).reset_index(drop=True)
    base = feature_matrix(frame)
    history, normalised = history_features(frame), normalised_features(frame)
    y = frame[LABEL_COLUMN].to_numpy(dtype=bool)
    users = frame["user_id"].to_numpy(dtype=str)
    cutoff = frame["measured_at"].quantile(1.0 - args.test_fraction).floor("D")
    after = (frame["measured_at"] >= cutoff).to_numpy()
    people = np.unique(users)
    print(
        f"{len(frame)} person-days, {len(people)} people, {y.mean():.1%} events; test = days "
        f"from {cutoff.date()} on ({after.sum()} rows), {args.seeds} seeds x {args.folds} groups"
    )
    results: dict[tuple[str, str], list[list[float]]] = {}
    for seed in range(args.seeds):
        scores = {(m, s): np.full(len(frame), np.nan) for m in MODELS for s in SETS}
        splitter = GroupKFold(n_splits=args.folds, shuffle=True, random_state=seed)
        for _, test_people in splitter.split(people, groups=people):
            held = np.isin(users, people[test_people])
            fit, test = ~held & ~after, held & after
            p = float(y[fit].mean())
            for feature_set in SETS:
                X = _matrix(base, history, normalised, feature_set, p)
                for model_name, make in MODELS.items():
                    model = make(seed).fit(X[fit], y[fit])  # type: ignore[attr-defined]
                    scores[(model_name, feature_set)][test] = model.predict_proba(X[test])[:, 1]  # type: ignore[attr-defined]
        for key, s in scores.items():
            scored = ~np.isnan(s)
            yt, st = y[scored], s[scored]
            row = [roc_auc_score(yt, st), average_precision_score(yt, st)]
            row += [recall_at_precision(yt, st, f) for f in FLOORS]
            results.setdefault(key, []).append(row)
        print(f"seed {seed} done", flush=True)
    print()
    print("| model | features | ROC-AUC | PR-AUC | recall @ precision 0.75 | @ 0.6 | @ 0.5 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (model_name, feature_set), rows in results.items():
        a = np.array(rows)
        cells = " | ".join(f"{m:.3f} ± {sd:.3f}" for m, sd in zip(a.mean(0), a.std(0), strict=True))
        print(f"| {model_name} | {feature_set} | {cells} |")
    print(f"\n(mean ± sd over {args.seeds} seeds; no skill: PR-AUC = event rate of the test rows)")


if __name__ == "__main__":
    main()
