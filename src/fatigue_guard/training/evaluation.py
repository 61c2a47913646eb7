"""Metrics for one scored data set at one operating threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from fatigue_guard.model.threshold import recall_at_precision


def evaluate(
    y_true: np.ndarray, scores: np.ndarray, threshold: float | None, floor: float
) -> dict[str, float]:
    """Precision, recall, F1, alert rate at ``threshold``; PR-AUC, ROC-AUC, recall@floor overall.

    ``threshold=None`` (a baseline that never reached the floor) means "never alert".
    ``recall_at_floor`` is the best recall with observed precision >= floor on *this* data: an
    oracle figure, the same yardstick for every model and baseline.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=float)
    alerts = s >= threshold if threshold is not None else np.zeros(len(s), dtype=bool)
    tp = int((alerts & y).sum())
    fp = int((alerts & ~y).sum())
    fn = int((~alerts & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both_classes = 0 < y.sum() < len(y)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "alert_rate": float(alerts.mean()) if len(s) else 0.0,
        "pr_auc": float(average_precision_score(y, s)) if both_classes else float("nan"),
        "roc_auc": float(roc_auc_score(y, s)) if both_classes else float("nan"),
        "recall_at_floor": recall_at_precision(y, s, floor),
        "threshold": float(threshold) if threshold is not None else float("nan"),
        "rows": float(len(y)),
        "positives": float(y.sum()),
        "tp": float(tp),
        "fp": float(fp),
        "fn": float(fn),
        "tn": float(len(y) - tp - fp - fn),
    }


def per_user_recall(users: np.ndarray, y_true: np.ndarray, alerts: np.ndarray) -> pd.Series:
    """Recall per user, over users with at least one fatigue event (index = user_id).

    A good average can hide users the model never warns; the distribution shows them.
    """
    df = pd.DataFrame({"user": users, "y": np.asarray(y_true, bool), "a": np.asarray(alerts, bool)})
    pos = df[df["y"]]
    if pos.empty:
        return pd.Series(dtype=float)
    return pos.groupby("user")["a"].mean().rename("recall")
