"""Decision threshold: maximise recall subject to precision >= floor, with a safety margin.

The product rule is "catch as many fatigue events as possible without burying users in
false alarms". A threshold picked where *observed* precision just touches the floor lands below it
on new data about half the time, so a threshold is only eligible when the **Wilson lower
confidence bound** of its precision clears the floor. The bound is wide when few alerts back it
(small data, very high thresholds) and tight when many do, which is the margin we want.

Alerts are not independent draws, though: they come in clusters per person (someone whose alerts
are mostly right, someone whose are mostly wrong), so the binomial bound is too narrow for the
question that matters, "how precise will this be on *other* people?". Given each row's user,
:func:`select_threshold` widens the bound by the **design effect**: the cluster-robust variance
of precision (a ratio estimator over users) divided by the binomial variance, so the Wilson bound
is taken on ``alerts / design_effect`` effective alerts. Measured on the simulator (300 users x
30 days, six seeds), held-out precision fell below the 0.75 floor in 2 of 6 runs with the plain
bound and 1 of 6 with the clustered one (0.748), for 0.002-0.011 less recall; design effects
were 1.3-2.0 (``benchmarks/threshold_margin.py``).

Precision that holds across people can still fail on *later days*: the model and the people move
on, and the held-out most recent days land below the floor although the out-of-fold-by-user
scores cleared it. :func:`select_threshold_for_views` therefore chooses on several views of the
training period, each clustered by user: out of fold by user (other people) and forward-chained
by time (a model fitted on earlier days scoring the next block of days: later periods), and keeps
the highest of the views' own thresholds (``benchmarks/threshold_margin.py`` measures it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

ATTAINABLE_FLOORS: tuple[float, ...] = (0.6, 0.5)
# A precision measured on a handful of alerts is noise; "best precision reachable" ignores
# thresholds backed by fewer alerts than this.
MIN_ALERTS_FOR_BEST_PRECISION = 20


@dataclass(frozen=True)
class ThresholdChoice:
    """The selected operating point, as measured on the scores it was chosen from."""

    threshold: float
    precision: float
    precision_lower_bound: float
    recall: float
    alert_rate: float
    alerts: int
    floor: float
    confidence_z: float
    design_effect: float = 1.0  # variance inflation from alerts clustering by user (>= 1)

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass
class NoThresholdMeetsFloor(Exception):
    """No threshold reaches the precision floor; carries what *is* attainable.

    ``attainable`` holds ``best_precision`` (over thresholds backed by enough alerts) and
    ``recall_at_precision_<floor>`` for a few lower floors, so an operator can lower the floor
    knowingly instead of guessing.
    """

    floor: float
    attainable: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None  # the MLflow run that logged the attempt, once known

    def __str__(self) -> str:
        parts = ", ".join(f"{k}={v:.3f}" for k, v in self.attainable.items())
        return (
            f"no decision threshold reaches precision >= {self.floor:.2f} "
            f"(with its confidence margin); attainable: {parts or 'nothing'}"
        )


def wilson_lower_bound(successes: np.ndarray, trials: np.ndarray, z: float) -> np.ndarray:
    """One-sided Wilson score lower bound of a binomial proportion, vectorised.

    ``z = 0`` returns the plain proportion. Trials of zero give a bound of 0.
    """
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / trials
        if z == 0:
            return np.where(trials > 0, p, 0.0)
        denom = 1.0 + z * z / trials
        centre = p + z * z / (2 * trials)
        spread = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
        bound = (centre - spread) / denom
    return np.where(trials > 0, bound, 0.0)


@dataclass(frozen=True)
class OperatingCurve:
    """Confusion counts at every distinct score, highest threshold first (alert = score >= t)."""

    thresholds: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    positives: int
    rows: int

    @property
    def alerts(self) -> np.ndarray:
        return self.true_positives + self.false_positives

    @property
    def precision(self) -> np.ndarray:
        return self.true_positives / np.maximum(self.alerts, 1)

    @property
    def recall(self) -> np.ndarray:
        return self.true_positives / max(self.positives, 1)


def operating_curve(y_true: np.ndarray, scores: np.ndarray) -> OperatingCurve:
    """Counts for every candidate threshold; O(n log n), no per-threshold loop."""
    curve, _ = _curve(y_true, scores, None)
    return curve


def _curve(
    y_true: np.ndarray, scores: np.ndarray, groups: np.ndarray | None
) -> tuple[OperatingCurve, np.ndarray]:
    """The operating curve and, per threshold, the design effect of its precision (all 1.0
    without ``groups``)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    # Keep the last index of each run of equal scores: alerting at ">= t" includes all ties.
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1] if len(s) else []
    curve = OperatingCurve(
        thresholds=s_sorted[last],
        true_positives=tp[last],
        false_positives=fp[last],
        positives=int(y.sum()),
        rows=len(y),
    )
    if groups is None or not len(s):
        return curve, np.ones(len(curve.thresholds))
    users = np.unique(np.asarray(groups)[order], return_inverse=True)[1]
    return curve, _design_effects(users, y_sorted)[last]


def _earlier_in_group(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each row, the sum of ``values`` over the earlier rows of its group."""
    order = np.argsort(groups, kind="mergesort")  # stable: rows keep their order in a group
    ordered = values[order]
    before = np.cumsum(ordered) - ordered  # over all earlier rows in sorted order ...
    starts = np.r_[0, np.flatnonzero(np.diff(groups[order])) + 1]
    sizes = np.diff(np.r_[starts, len(groups)])
    before -= np.repeat(before[starts], sizes)  # ... minus those of earlier groups
    out = np.empty(len(groups))
    out[order] = before
    return out


def _design_effects(users: np.ndarray, y_sorted: np.ndarray) -> np.ndarray:
    """Design effect of precision after each row (rows in alerting order), vectorised.

    Precision ``p = sum(t_u) / sum(a_u)`` over users ``u`` (``a_u`` alerts, ``t_u`` true ones)
    has cluster-robust variance ``k/(k-1) * sum((t_u - p a_u)^2) / A^2`` (``k`` users with
    alerts, ``A`` alerts). The three sums inside expand to running sums of ``t_u^2``,
    ``t_u a_u`` and ``a_u^2``, whose increments when a row joins depend only on that user's
    counts so far: one cumulative pass, no per-threshold loop.
    """
    y = y_sorted.astype(float)
    a_prev = _earlier_in_group(users, np.ones(len(y)))  # the user's alerts before this row
    t_prev = _earlier_in_group(users, y)  # ... and true ones among them
    sum_a2 = np.cumsum(2 * a_prev + 1)
    sum_t2 = np.cumsum(y * (2 * t_prev + 1))
    sum_ta = np.cumsum(t_prev + y * a_prev + y)
    k = np.cumsum(a_prev == 0)
    A = np.arange(1, len(y) + 1, dtype=float)
    p = np.cumsum(y) / A
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.maximum(sum_t2 - 2 * p * sum_ta + p * p * sum_a2, 0.0)
        var_cluster = k / np.maximum(k - 1, 1) * spread / (A * A)
        var_binomial = p * (1 - p) / A
        deff = np.where(var_binomial > 0, var_cluster / var_binomial, 1.0)
    # All alerts from one person: one effective observation, whatever the count.
    deff = np.where(k < 2, A, deff)
    return np.maximum(np.nan_to_num(deff, nan=1.0, posinf=A.max()), 1.0)


def recall_at_precision(y_true: np.ndarray, scores: np.ndarray, floor: float) -> float:
    """Best recall whose observed precision >= ``floor`` (no margin); 0 if none.

    This is the like-for-like yardstick for comparing models and baselines on one data set.
    """
    curve = operating_curve(y_true, scores)
    ok = curve.precision >= floor
    return float(curve.recall[ok].max()) if ok.any() else 0.0


def attainable_points(
    y_true: np.ndarray, scores: np.ndarray, floors: tuple[float, ...] = ATTAINABLE_FLOORS
) -> dict[str, float]:
    """What an operator could get instead: best precision and recall at lower floors."""
    curve = operating_curve(y_true, scores)
    enough = curve.alerts >= min(MIN_ALERTS_FOR_BEST_PRECISION, max(curve.rows, 1))
    best = float(curve.precision[enough].max()) if enough.any() else 0.0
    out = {"best_precision": best}
    for f in floors:
        out[f"recall_at_precision_{f:g}"] = recall_at_precision(y_true, scores, f)
    return out


def select_threshold(
    y_true: np.ndarray,
    scores: np.ndarray,
    floor: float,
    *,
    confidence_z: float = 1.645,
    groups: np.ndarray | None = None,
) -> ThresholdChoice:
    """Highest-recall threshold whose precision lower bound (Wilson, ``confidence_z``) >= floor.

    With ``groups`` (each row's user) the bound counts effective alerts, ``alerts / design
    effect``, so that precision holds for other people, not only for other moments of the same
    people (see the module docstring).

    Raises :class:`NoThresholdMeetsFloor` with the attainable operating points when none is.
    """
    curve, deff = _curve(y_true, scores, groups)
    if curve.positives == 0:
        raise NoThresholdMeetsFloor(floor, {"best_precision": 0.0})
    effective = curve.alerts / deff
    lower = wilson_lower_bound(curve.precision * effective, effective, confidence_z)
    eligible = np.flatnonzero(lower >= floor)
    if eligible.size == 0:
        raise NoThresholdMeetsFloor(floor, attainable_points(y_true, scores))
    # Recall never falls as the threshold is lowered, so the best eligible recall is at the
    # lowest eligible threshold. Among thresholds with that same recall, the highest one adds no
    # true positives and fewer false ones: take the first occurrence of the maximum.
    i = int(eligible[np.argmax(curve.recall[eligible])])
    return ThresholdChoice(
        threshold=float(curve.thresholds[i]),
        precision=float(curve.precision[i]),
        precision_lower_bound=float(lower[i]),
        recall=float(curve.recall[i]),
        alert_rate=float(curve.alerts[i] / curve.rows),
        alerts=int(curve.alerts[i]),
        floor=float(floor),
        confidence_z=float(confidence_z),
        design_effect=float(deff[i]),
    )


@dataclass(frozen=True)
class ScoredView:
    """One validation view of the training period: labels, scores and each row's user."""

    name: str
    y_true: np.ndarray
    scores: np.ndarray
    groups: np.ndarray | None = None


@dataclass(frozen=True)
class ViewsChoice:
    """The chosen operating point, measured on the ``binding`` view (the one that asked for the
    highest threshold), and every view's figures at that threshold."""

    choice: ThresholdChoice
    binding: str
    by_view: dict[str, ThresholdChoice]


@dataclass(frozen=True)
class _ViewCurve:
    view: ScoredView
    curve: OperatingCurve
    deff: np.ndarray
    lower: np.ndarray

    def at(self, thresholds: np.ndarray) -> np.ndarray:
        """Curve index of each threshold (alert = score >= t); -1 when nothing alerts."""
        ascending = self.curve.thresholds[::-1]
        pos = np.searchsorted(ascending, thresholds, side="left")  # first score >= t
        return np.where(pos < len(ascending), len(ascending) - 1 - pos, -1)

    def point(self, i: int, floor: float, z: float) -> ThresholdChoice:
        c = self.curve
        if i < 0:
            return ThresholdChoice(np.inf, 0.0, 0.0, 0.0, 0.0, 0, floor, z)
        return ThresholdChoice(
            threshold=float(c.thresholds[i]),
            precision=float(c.precision[i]),
            precision_lower_bound=float(self.lower[i]),
            recall=float(c.recall[i]),
            alert_rate=float(c.alerts[i] / c.rows),
            alerts=int(c.alerts[i]),
            floor=float(floor),
            confidence_z=float(z),
            design_effect=float(self.deff[i]),
        )


def _view_curve(view: ScoredView, z: float) -> _ViewCurve:
    curve, deff = _curve(view.y_true, view.scores, view.groups)
    effective = curve.alerts / deff
    lower = wilson_lower_bound(curve.precision * effective, effective, z)
    return _ViewCurve(view, curve, deff, lower)


def select_threshold_for_views(
    views: list[ScoredView], floor: float, *, confidence_z: float = 1.645
) -> ViewsChoice:
    """The most conservative of the thresholds each view chooses by itself.

    Each view's own choice is :func:`select_threshold` on it (clustered by its ``groups``); the
    highest of them is taken, so the threshold is at least as strict as every view asks for.
    Asking instead for one threshold whose bound clears the floor in every view at once refuses
    too often on small data: a stricter threshold has fewer alerts, so a wider bound, in the view
    that did not ask for it. ``by_view`` holds every view's figures at the chosen threshold. With
    a single view this is :func:`select_threshold` on it.

    Raises :class:`NoThresholdMeetsFloor` with the attainable operating points of the first view
    that has no eligible threshold: a threshold that only holds across people, or only on later
    days, is not one the product can promise.
    """
    if not views:
        raise ValueError("need at least one view")
    own = {
        v.name: select_threshold(
            v.y_true, v.scores, floor, confidence_z=confidence_z, groups=v.groups
        )
        for v in views
    }
    binding = max(own, key=lambda name: own[name].threshold)  # the first view on a tie
    t = np.array([own[binding].threshold])
    by_view = {}
    for view in views:
        curve = _view_curve(view, confidence_z)
        by_view[view.name] = _with_threshold(
            curve.point(int(curve.at(t)[0]), floor, confidence_z), float(t[0])
        )
    return ViewsChoice(own[binding], binding, by_view)


def _with_threshold(point: ThresholdChoice, threshold: float) -> ThresholdChoice:
    return ThresholdChoice(**{**asdict(point), "threshold": threshold})
