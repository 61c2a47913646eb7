"""Would calibrating the forest's probabilities make the decision threshold more stable?

Calibrated probabilities are only worth having *if they improve the threshold's stability*. This
module measures it on the out-of-fold (by user) scores the threshold is chosen from, for three
score forms:

* ``raw`` - the forest's probabilities as served today;
* ``sigmoid`` - Platt scaling: a logistic regression on the logit of the score;
* ``isotonic`` - ``IsotonicRegression(out_of_bounds="clip")``.

Every calibrator is **cross-fitted**: for fold *k* it is fitted on the other folds' scores and
applied to fold *k*, so no row is calibrated by a map that saw its own label. Reported per form:

* Brier score and expected calibration error (10 equal-frequency bins) of the cross-fitted
  probabilities: how well a probability means what it says;
* threshold stability: for each fold *k*, the threshold is chosen exactly as training chooses it
  (:func:`~fatigue_guard.model.threshold.select_threshold`, Wilson margin) on the other folds'
  scores of that form, then applied to fold *k*, whose precision and recall are recorded. The
  spread (std) of fold precision, the share of folds below the floor and the mean recall
  summarise how well a threshold chosen on some people holds on others.

Decision rule (:func:`decide`): calibrate only if a calibrated form lowers the fold-precision std
by at least 10 % (relative) **and** loses at most 0.01 mean recall **and** does not raise the share
of folds below the floor. Otherwise keep the raw scores.

Why calibration usually cannot change the threshold's stability: the threshold rule looks only at
the *order* of the scores and at counts (true and false alerts above each cut). A calibrator is a
non-decreasing map ``c`` fitted on the very scores the threshold is chosen from. When ``c`` is
strictly increasing (Platt with a positive slope) every candidate cut on ``c(s)`` selects the
same rows as a cut on ``s``, with the same Wilson bound, so the same rows are chosen on the other
folds and ``c(s) >= c(s*)`` alerts exactly the rows with ``s >= s*`` on fold *k*: the alerts are
bit-identical and only Brier/ECE move. Isotonic regression is only non-decreasing: its flat steps
pool neighbouring scores into ties, which *removes* candidate cuts (and ``clip`` flattens the
extremes), so it can move the cut to a coarser one, but it cannot reorder rows. Whether that
coarsening helps or hurts stability is an empirical question, hence measured, not assumed
(``alerts_changed_share`` reports how many rows' alert decisions differ from raw at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from fatigue_guard.model.threshold import NoThresholdMeetsFloor, select_threshold

FORMS: tuple[str, ...] = ("raw", "sigmoid", "isotonic")
CALIBRATED_FORMS: tuple[str, ...] = ("sigmoid", "isotonic")
ECE_BINS = 10
# The decision rule's margins: a calibrated form must cut the fold-precision spread by
# a tenth to be worth a second model artefact, and may not buy it with recall.
MIN_RELATIVE_STD_DROP = 0.10
MAX_RECALL_LOSS = 0.01
# Forest probabilities are often exactly 0 or 1; the logit needs them kept off the asymptotes.
_LOGIT_EPS = 1e-6
# Float slack so that a drop of exactly 10 % or a recall loss of exactly 0.01 passes.
_TOL = 1e-9

Folds = Sequence[tuple[np.ndarray, np.ndarray]]


class StabilityFigures(Protocol):
    """What the decision rule reads from a score form (lets tests pass synthetic figures)."""

    precision_std: float
    share_below_floor: float
    recall_mean: float


@dataclass(frozen=True)
class Stability:
    """Plain stability figures, e.g. for exercising :func:`decide` directly."""

    precision_std: float
    share_below_floor: float
    recall_mean: float


@dataclass(frozen=True)
class FormAssessment:
    """Calibration quality and threshold stability of one score form.

    Per-fold lists follow the order of ``folds``. ``fold_threshold`` is ``None`` where no
    threshold met the floor on the other folds; ``fold_precision`` is NaN where fold *k* raised
    no alert (precision undefined), and such folds are left out of ``precision_std`` and
    ``precision_mean``. ``share_below_floor`` counts over all folds (a fold without alerts is
    not below the floor, but its recall of 0 weighs on ``recall_mean``).
    """

    name: str
    brier: float
    ece: float
    fold_threshold: tuple[float | None, ...]
    fold_precision: tuple[float, ...]
    fold_recall: tuple[float, ...]
    precision_std: float
    precision_mean: float
    share_below_floor: float
    recall_mean: float
    no_threshold_folds: int
    alerts_changed_share: float

    def as_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CalibrationAssessment:
    """The measured forms and the decision. ``form`` names the chosen calibrator, if any."""

    forms: Mapping[str, FormAssessment]
    calibrate: bool
    form: str | None
    reason: str
    floor: float
    confidence_z: float
    seed: int
    rows: int
    folds: int
    rule: Mapping[str, float] = field(
        default_factory=lambda: {
            "min_relative_std_drop": MIN_RELATIVE_STD_DROP,
            "max_recall_loss": MAX_RECALL_LOSS,
        }
    )

    @property
    def decision(self) -> str:
        return "calibrate" if self.calibrate else "keep_raw"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (NaN becomes ``null``), for ``calibration/assessment.json``."""
        return {
            "decision": self.decision,
            "calibrate": self.calibrate,
            "form": self.form,
            "reason": self.reason,
            "floor": self.floor,
            "confidence_z": self.confidence_z,
            "seed": self.seed,
            "rows": self.rows,
            "folds": self.folds,
            "rule": dict(self.rule),
            "ece_bins": ECE_BINS,
            "forms": {name: f.as_dict() for name, f in self.forms.items()},
        }

    def metrics(self) -> dict[str, float]:
        """Flat ``calibration.<form>.<figure>`` floats for ``mlflow.log_metrics``.

        Undefined figures (NaN) are left out rather than logged as NaN, like the other views.
        """
        out = {"calibration.calibrate": float(self.calibrate)}
        for name, f in self.forms.items():
            figures = {
                "brier": f.brier,
                "ece": f.ece,
                "precision_std": f.precision_std,
                "precision_mean": f.precision_mean,
                "share_below_floor": f.share_below_floor,
                "recall_mean": f.recall_mean,
                "no_threshold_folds": float(f.no_threshold_folds),
                "alerts_changed_share": f.alerts_changed_share,
            }
            out.update({f"calibration.{name}.{k}": float(v) for k, v in figures.items()})
        return {k: v for k, v in out.items() if np.isfinite(v)}

    def tags(self) -> dict[str, str]:
        # MLflow caps tag values at 5000 characters; the reason is one line, well under.
        return {"calibration.decision": self.decision, "calibration.reason": self.reason[:4000]}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between probability and outcome (0 is perfect)."""
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over equal-frequency bins: row-weighted mean |observed rate - mean probability|.

    Equal-frequency rather than equal-width bins because forest scores crowd near 0 at ~10 %
    prevalence: equal-width bins would leave the upper bins with a handful of rows each.
    """
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    if len(p) == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    total = 0.0
    for idx in np.array_split(order, min(bins, len(p))):
        total += len(idx) * abs(y[idx].mean() - p[idx].mean())
    return float(total / len(p))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, float), _LOGIT_EPS, 1 - _LOGIT_EPS)
    return np.log(q / (1 - q)).reshape(-1, 1)


def _fit_calibrator(form: str, scores: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """A fitted map score -> probability for ``form``; identity when it cannot be fitted."""
    if form == "raw" or y.all() or not y.any():
        # One class on the fitting folds: nothing to calibrate against, keep the scores.
        return lambda s: np.asarray(s, float)
    if form == "sigmoid":
        # C=inf: Platt scaling is an unpenalised two-parameter fit.
        model = LogisticRegression(C=np.inf, random_state=seed).fit(_logit(scores), y)
        return lambda s: model.predict_proba(_logit(s))[:, 1]
    if form == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
        return lambda s: iso.predict(np.asarray(s, float))
    raise ValueError(f"unknown score form {form!r}; choose one of {FORMS}")


def _assess_form(
    form: str,
    y: np.ndarray,
    scores: np.ndarray,
    folds: Folds,
    floor: float,
    confidence_z: float,
    seed: int,
    raw_alerts: np.ndarray | None,
    groups: np.ndarray | None,
) -> tuple[FormAssessment, np.ndarray]:
    """Cross-fit ``form``, score it, and return it with its per-row alert decisions."""
    n = len(y)
    crossfit = np.full(n, np.nan)
    alerts = np.zeros(n, dtype=bool)
    thresholds: list[float | None] = []
    precisions: list[float] = []
    recalls: list[float] = []
    for fit_idx, val_idx in folds:
        calibrate = _fit_calibrator(form, scores[fit_idx], y[fit_idx], seed)
        other, own = calibrate(scores[fit_idx]), calibrate(scores[val_idx])
        crossfit[val_idx] = own
        try:
            # The deployment situation: calibrator and threshold both fitted on the same
            # (other-fold) scores, then applied to people neither saw.
            t: float | None = select_threshold(
                y[fit_idx],
                other,
                floor,
                confidence_z=confidence_z,
                groups=None if groups is None else groups[fit_idx],
            ).threshold
        except NoThresholdMeetsFloor:
            t = None  # training would register nothing; this fold raises no alert
        thresholds.append(t)
        fold_alerts = own >= t if t is not None else np.zeros(len(val_idx), dtype=bool)
        alerts[val_idx] = fold_alerts
        y_k = y[val_idx]
        tp = int((fold_alerts & y_k).sum())
        precisions.append(tp / int(fold_alerts.sum()) if fold_alerts.any() else float("nan"))
        recalls.append(tp / int(y_k.sum()) if y_k.any() else float("nan"))

    covered = ~np.isnan(crossfit)
    prec = np.asarray(precisions, float)
    defined = prec[np.isfinite(prec)]
    rec = np.asarray(recalls, float)
    assessment = FormAssessment(
        name=form,
        brier=brier_score(y[covered], crossfit[covered]),
        ece=expected_calibration_error(y[covered], crossfit[covered]),
        fold_threshold=tuple(thresholds),
        fold_precision=tuple(float(v) for v in prec),
        fold_recall=tuple(float(v) for v in rec),
        # Population std: the folds are the whole set being described, not a sample of folds.
        precision_std=float(defined.std()) if len(defined) >= 2 else float("nan"),
        precision_mean=float(defined.mean()) if len(defined) else float("nan"),
        share_below_floor=float((defined < floor).sum() / len(prec)) if len(prec) else 0.0,
        recall_mean=float(np.nanmean(rec)) if np.isfinite(rec).any() else float("nan"),
        no_threshold_folds=sum(t is None for t in thresholds),
        alerts_changed_share=(
            0.0 if raw_alerts is None else float((alerts[covered] != raw_alerts[covered]).mean())
        ),
    )
    return assessment, alerts


def decide(
    raw: StabilityFigures,
    calibrated: Mapping[str, StabilityFigures],
    *,
    min_relative_std_drop: float = MIN_RELATIVE_STD_DROP,
    max_recall_loss: float = MAX_RECALL_LOSS,
) -> tuple[str | None, str]:
    """The decision rule: ``(chosen form or None, one-line reason with the measured figures)``.

    A form qualifies when it lowers the fold-precision std by at least ``min_relative_std_drop``
    (relative to raw), loses at most ``max_recall_loss`` mean recall and does not raise the share
    of folds below the floor. Among qualifying forms the largest std drop wins.
    """
    raw_std = raw.precision_std
    if not np.isfinite(raw_std):
        return None, (
            "keep raw: fold-precision spread not measurable (fewer than two folds raised alerts)"
        )
    rule = (
        f"rule: std -{min_relative_std_drop:.0%}, recall loss <= {max_recall_loss:g}, "
        "no more folds below floor"
    )
    best: tuple[float, str] | None = None
    parts: list[str] = []
    for name, cal in calibrated.items():
        if not np.isfinite(cal.precision_std):
            drop = float("-inf")  # an unmeasurable spread cannot show an improvement
        elif raw_std > 0:
            drop = (raw_std - cal.precision_std) / raw_std
        else:
            # Raw folds already agree exactly: nothing left to improve, anything else is worse.
            drop = 0.0 if cal.precision_std == 0 else float("-inf")
        recall_loss = raw.recall_mean - cal.recall_mean
        ok = (
            drop >= min_relative_std_drop - _TOL
            and recall_loss <= max_recall_loss + _TOL
            and cal.share_below_floor <= raw.share_below_floor + _TOL
        )
        parts.append(
            f"{name} std {cal.precision_std:.4f} ({-drop:+.0%}), recall {cal.recall_mean:.3f}, "
            f"below floor {cal.share_below_floor:.0%}"
        )
        if ok and (best is None or drop > best[0]):
            best = (drop, name)
    figures = (
        f"raw std {raw_std:.4f}, recall {raw.recall_mean:.3f}, "
        f"below floor {raw.share_below_floor:.0%}; " + "; ".join(parts)
    )
    if best is None:
        return None, f"keep raw: no calibrated form qualifies ({figures}; {rule})"
    return best[1], f"calibrate with {best[1]}: {figures}; {rule}"


def assess_calibration(
    y: np.ndarray,
    oof: np.ndarray,
    folds: Folds,
    *,
    floor: float,
    confidence_z: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> CalibrationAssessment:
    """Measure raw, sigmoid and isotonic scores on ``oof`` and decide whether to calibrate.

    ``oof`` are the out-of-fold (by user) probabilities the threshold is chosen from and
    ``folds`` the same ``(fit_idx, val_idx)`` pairs that produced them. Deterministic given its
    inputs; ``seed`` is passed to the logistic regression (recorded for reproducibility).
    ``groups`` (each row's user) gives the thresholds training's clustered margin.
    """
    y = np.asarray(y).astype(bool)
    scores = np.asarray(oof, dtype=float)
    if len(y) != len(scores):
        raise ValueError(f"y has {len(y)} rows but oof has {len(scores)}")
    forms: dict[str, FormAssessment] = {}
    raw_alerts: np.ndarray | None = None
    for form in FORMS:
        forms[form], alerts = _assess_form(
            form, y, scores, folds, floor, confidence_z, seed, raw_alerts, groups
        )
        if form == "raw":
            raw_alerts = alerts
    chosen, reason = decide(forms["raw"], {name: forms[name] for name in CALIBRATED_FORMS})
    return CalibrationAssessment(
        forms=forms,
        calibrate=chosen is not None,
        form=chosen,
        reason=reason,
        floor=float(floor),
        confidence_z=float(confidence_z),
        seed=int(seed),
        rows=len(y),
        folds=len(folds),
    )
