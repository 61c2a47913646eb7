"""One training run end to end: data -> honest splits -> search -> threshold -> evaluation ->
MLflow run with a logged model: a candidate. Registering it is the model lifecycle's job
(:mod:`fatigue_guard.lifecycle.registration`); training registers nothing.

Views reported (see :mod:`fatigue_guard.training.splits`): ``holdout_time`` (the most recent days,
scored by the final model: the headline figures) and ``oof_user`` (out-of-fold by user over the
training period: how the model does on people it never saw). The threshold is the stricter of
the ones chosen on these and on forward-chained scores of the training period's last days
(:mod:`fatigue_guard.training.threshold_views`).

The final model is fitted on the training period only, so the held-out days stay unseen and can
serve the validation gate later.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION, LABEL_COLUMN
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.model.pipeline import build_pipeline, positive_proba
from fatigue_guard.model.profile import build_reference_profile
from fatigue_guard.model.threshold import (
    NoThresholdMeetsFloor,
    ThresholdChoice,
    select_threshold_for_views,
)
from fatigue_guard.registry.lineage import dataset_lineage, git_commit
from fatigue_guard.registry.models import (
    GOLDEN_ARTIFACT,
    HOLDOUT_ARTIFACT,
    ONNX_ARTIFACT,
    TAG_FEATURES_VERSION,
    TAG_FLOOR,
    TAG_THRESHOLD,
    TAG_TRAIN_CUTOFF,
    RegisteredModel,
)
from fatigue_guard.registry.tracking import configure_mlflow, experiment_id
from fatigue_guard.training import artifacts
from fatigue_guard.training.advisory import advisory_choice, choice_tags
from fatigue_guard.training.baselines import BaselineResult, evaluate_baselines
from fatigue_guard.training.calibration import CalibrationAssessment, assess_calibration
from fatigue_guard.training.data import TooManyInvalidRows, TrainingData, load_training_data
from fatigue_guard.training.evaluation import evaluate, per_user_recall
from fatigue_guard.training.search import SearchResult, search_on_sample
from fatigue_guard.training.splits import TimeSplit, time_split, user_folds
from fatigue_guard.training.threshold_views import threshold_views

Progress = Callable[[str], None]
HEADLINE = ("precision", "recall", "f1", "pr_auc", "roc_auc", "recall_at_floor", "alert_rate")


@dataclass
class TrainResult:
    """What a run produced. ``metrics[view][name]``; ``baselines[name][metric]`` (hold-out)."""

    run_id: str
    # The logged model and the tags its registered version would carry.
    model_uri: str
    version_tags: dict[str, str]
    threshold: float
    metrics: dict[str, dict[str, float]]
    baselines: dict[str, dict[str, float]]
    beats_baselines: bool
    invalid_rows: dict[str, Any]
    params: dict[str, Any]
    rows: int
    users: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    # The calibration assessment (calibration/assessment.json); the served model stays raw.
    calibration: dict[str, Any] = field(default_factory=dict)
    # Set by the lifecycle once the candidate is registered.
    registered: RegisteredModel | None = None
    alias: str | None = None


# Counts stay in the confusion-matrix artifact: every logged metric is a row MLflow also links to
# the logged model, so fewer, meaningful metrics keep runs quick.
VIEW_METRICS = (*HEADLINE, "threshold")


def _log_view(prefix: str, metrics: dict[str, float]) -> None:
    mlflow.log_metrics(
        {f"{prefix}.{k}": metrics[k] for k in VIEW_METRICS if np.isfinite(metrics[k])}
    )


PROFILE_ARTIFACT = "reference/drift_profile.json"


def _pip_requirements() -> list[str]:
    import cloudpickle
    import sklearn

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
        f"numpy=={np.__version__}",
    ]


def _export_onnx(pipeline: Any) -> bytes | None:
    """ONNX bytes via the edge exporter, once that module exists (it is optional here)."""
    try:
        from fatigue_guard.model.onnx_export import export_onnx
    except ImportError:
        return None
    return export_onnx(pipeline)


@dataclass(frozen=True)
class _Options:
    """What one run was asked for, resolved against the settings."""

    settings: Settings
    floor: float
    budget_s: float
    z: float
    seed: int
    n_jobs: int
    say: Progress
    advisory: bool = False


@dataclass(frozen=True)
class _Dataset:
    """The validated rows, split by time (train / hold-out) and by user (search folds)."""

    data: TrainingData
    X: np.ndarray
    y: np.ndarray
    users: np.ndarray
    split: TimeSplit
    folds: list[tuple[np.ndarray, np.ndarray]]
    lineage: dict[str, Any]

    @property
    def frame(self) -> pd.DataFrame:
        return self.data.frame

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features, labels and users of the training period."""
        s = self.split.train
        return self.X[s], self.y[s], self.users[s]

    @property
    def holdout(self) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels of the held-out recent days."""
        return self.X[self.split.holdout], self.y[self.split.holdout]


def train_model(
    settings: Settings,
    data: pd.DataFrame | Path,
    *,
    precision_floor: float | None = None,
    seed: int = 0,
    n_jobs: int = 2,
    search_budget_s: float | None = None,
    progress: Progress | None = None,
    live: pd.DataFrame | None = None,
    tags: dict[str, str] | None = None,
    advisory: bool = False,
) -> TrainResult:
    """Train, evaluate and log one candidate model in an MLflow run; register nothing.

    ``live`` adds labelled live records (the data plane's
    ``read_live_dataset(..., labelled_only=True)`` up to a cutoff); ``tags`` are set on the run
    whatever its outcome (e.g. the live window, so the table can be rebuilt).

    Raises :class:`NoThresholdMeetsFloor` (run logged, nothing registered) unless ``advisory``,
    which logs a never-alerting candidate instead (:mod:`fatigue_guard.training.advisory`), and
    :class:`~fatigue_guard.training.data.TooManyInvalidRows`.
    """
    opts = _Options(
        settings=settings,
        floor=settings.precision_floor if precision_floor is None else precision_floor,
        budget_s=settings.search_budget_s if search_budget_s is None else search_budget_s,
        z=settings.threshold_confidence_z,
        seed=seed,
        n_jobs=n_jobs,
        say=progress or (lambda _msg: None),
        advisory=advisory,
    )
    started = time.perf_counter()
    timings: dict[str, float] = {}
    exp_id = experiment_id(settings, configure_mlflow(settings))
    code = git_commit()

    dataset = _load_and_split(opts, data, live, exp_id, code, tags)
    timings["load_s"] = time.perf_counter() - started
    with mlflow.start_run(experiment_id=exp_id, run_name="train") as run:
        run_id = run.info.run_id
        _log_inputs(opts, dataset, code, tags)
        found = _search(opts, dataset, timings)
        choice = _choose_threshold(opts, dataset, found, run_id, timings)
        calibration = _assess_calibration(opts, dataset, found)
        pipeline, p_ho, views = _fit_and_evaluate(opts, dataset, found, choice, timings)
        baselines, beats = _compare_with_baselines(opts, dataset, views)
        onnx_bytes, model_uri = _log_artifacts_and_model(
            opts, dataset, pipeline, p_ho, found, choice, views, timings
        )
        version_tags = _version_tags(
            choice.threshold,
            opts.floor,
            dataset.split.cutoff,
            views["holdout_time"],
            beats,
            has_onnx=onnx_bytes is not None,
        )
        version_tags.update(choice_tags(choice))
        mlflow.set_tag("status", "logged")

    return TrainResult(
        run_id=run_id,
        model_uri=model_uri,
        version_tags=version_tags,
        threshold=choice.threshold,
        metrics=views,
        baselines={b.name: b.holdout for b in baselines},
        beats_baselines=beats,
        invalid_rows=dataset.data.report.as_dict(),
        params=found.best_params,
        rows=len(dataset.frame),
        users=int(dataset.lineage["users"]),
        seconds=time.perf_counter() - started,
        timings=timings,
        calibration=calibration.as_dict(),
    )


def _load_and_split(
    opts: _Options,
    data: pd.DataFrame | Path,
    live: pd.DataFrame | None,
    exp_id: str,
    code: dict[str, str],
    tags: dict[str, str] | None,
) -> _Dataset:
    """Validate the rows (a run records the refusal when too many are invalid), then split."""
    settings = opts.settings
    opts.say("reading and validating data")
    try:
        td = load_training_data(data, max_invalid_share=settings.max_invalid_share, live=live)
    except TooManyInvalidRows as exc:
        with mlflow.start_run(experiment_id=exp_id, run_name="train-invalid-data"):
            mlflow.set_tags(
                {**(tags or {}), "status": "failed_invalid_data", "git_commit": code["commit"]}
            )
            mlflow.log_dict(exc.report.as_dict(), "data_quality/invalid_rows.json")
        raise
    frame = td.frame
    users = frame["user_id"].to_numpy()
    split = time_split(frame["measured_at"], settings.holdout_fraction)
    return _Dataset(
        data=td,
        X=feature_matrix(frame),
        y=frame[LABEL_COLUMN].to_numpy(dtype=bool),
        users=users,
        split=split,
        folds=user_folds(users[split.train], settings.cv_folds, opts.seed),
        lineage=dataset_lineage(
            frame,
            source=td.source,
            sha256=td.sha256,
            invalid_rows=td.report.invalid_rows,
            train_cutoff=split.cutoff,
        ),
    )


def _log_inputs(
    opts: _Options, dataset: _Dataset, code: dict[str, str], tags: dict[str, str] | None
) -> None:
    """Tags and parameters that make the run reproducible: code, data lineage, options."""
    settings, lineage, td = opts.settings, dataset.lineage, dataset.data
    mlflow.set_tags(
        {
            **(tags or {}),
            "status": "running",
            "git_commit": code["commit"],
            "git_dirty": code["dirty"],
            "mlflow.source.git.commit": code["commit"],
            "features_version": str(FEATURES_VERSION),
            "data.source": td.source,
            "data.sha256": td.sha256,
            "data.rows": str(lineage["rows"]),
            "data.users": str(lineage["users"]),
            "data.date_min": lineage["date_min"],
            "data.date_max": lineage["date_max"],
            "data.train_cutoff": lineage["train_cutoff"],
            **{f"data.simulation.{k}": str(v) for k, v in lineage["simulation"].items()},
        }
    )
    mlflow.log_params(
        {
            "precision_floor": opts.floor,
            "threshold_confidence_z": opts.z,
            "seed": opts.seed,
            "n_jobs": opts.n_jobs,
            "search_budget_s": opts.budget_s,
            "n_estimators": settings.n_estimators,
            "cv_folds": len(dataset.folds),
            "holdout_fraction": settings.holdout_fraction,
            "train_rows": len(dataset.split.train),
            "holdout_rows": len(dataset.split.holdout),
        }
    )
    mlflow.log_dict(td.report.as_dict(), "data_quality/invalid_rows.json")
    mlflow.log_dict(lineage, "lineage/dataset.json")


def _search(opts: _Options, dataset: _Dataset, timings: dict[str, float]) -> SearchResult:
    """Bounded hyperparameter search, scored out of fold by user at the precision floor."""
    settings = opts.settings
    X_tr, y_tr, g_tr = dataset.train
    opts.say(
        f"searching hyperparameters (budget {opts.budget_s:g} s, {len(dataset.folds)}-fold by user)"
    )
    t0 = time.perf_counter()
    found = search_on_sample(
        X_tr,
        y_tr,
        g_tr,
        dataset.folds,
        max_rows=settings.search_max_rows,
        floor=opts.floor,
        confidence_z=opts.z,
        budget_s=opts.budget_s,
        n_estimators=settings.n_estimators,
        seed=opts.seed,
        n_jobs=opts.n_jobs,
    )
    timings["search_s"] = time.perf_counter() - t0 - found.oof_seconds
    timings["oof_s"] = found.oof_seconds
    mlflow.log_params({f"forest.{k}": v for k, v in found.best_params.items()})
    mlflow.log_params({"search.max_rows": settings.search_max_rows})
    mlflow.log_metrics({"search.trials": len(found.trials), "search.rows": found.sample_rows})
    mlflow.log_dict(
        [
            {
                "params": t.params,
                "recall_at_floor": t.recall_at_floor,
                "pr_auc": t.pr_auc,
                "seconds": t.seconds,
            }
            for t in found.trials
        ],
        "search/trials.json",
    )
    return found


def _choose_threshold(
    opts: _Options,
    dataset: _Dataset,
    found: SearchResult,
    run_id: str,
    timings: dict[str, float],
) -> ThresholdChoice:
    """The stricter of the thresholds with the most recall whose precision bound clears the
    floor, out of fold by user and forward in time (:mod:`fatigue_guard.training.threshold_views`);
    when a view has none, the run records what was attainable, and raises."""
    X_tr, y_tr, g_tr = dataset.train
    opts.say("choosing the decision threshold on out-of-fold and forward-chained scores")
    t0 = time.perf_counter()
    views = threshold_views(
        found.best_params,
        X_tr,
        y_tr,
        g_tr,
        dataset.frame["measured_at"].iloc[dataset.split.train],
        found.best_oof,
        block_fraction=opts.settings.holdout_fraction,
        n_estimators=opts.settings.n_estimators,
        seed=opts.seed,
        n_jobs=opts.n_jobs,
    )
    timings["forward_s"] = time.perf_counter() - t0
    try:
        chosen = select_threshold_for_views(views, opts.floor, confidence_z=opts.z)
    except NoThresholdMeetsFloor as exc:
        exc.run_id = run_id
        mlflow.log_metrics({f"attainable.{k}": v for k, v in exc.attainable.items()})
        _log_view("oof_user", evaluate(y_tr, found.best_oof, None, opts.floor))
        mlflow.set_tags({"status": "no_threshold_meets_floor", "failure": str(exc)[:4000]})
        if not opts.advisory:
            raise
        mlflow.set_tag("alerting", "advisory")
        return advisory_choice(exc, opts.z)
    choice = chosen.choice
    mlflow.log_metrics(
        {
            "threshold": choice.threshold,
            "threshold.precision_lower_bound": choice.precision_lower_bound,
            "threshold.design_effect": choice.design_effect,
            **{
                f"threshold.{view}.{name}": getattr(point, name)
                for view, point in chosen.by_view.items()
                for name in ("precision_lower_bound", "precision", "recall")
            },
        }
    )
    mlflow.set_tag("threshold.binding_view", chosen.binding)
    return choice


def _assess_calibration(
    opts: _Options, dataset: _Dataset, found: SearchResult
) -> CalibrationAssessment:
    # Measured only: even a "calibrate" decision leaves the served forest raw, because the
    # ONNX export and the golden vectors are defined on its probabilities.
    _, y_tr, g_tr = dataset.train
    calibration = assess_calibration(
        y_tr,
        found.best_oof,
        dataset.folds,
        floor=opts.floor,
        confidence_z=opts.z,
        seed=opts.seed,
        groups=g_tr,
    )
    mlflow.log_metrics(calibration.metrics())
    mlflow.log_dict(calibration.as_dict(), "calibration/assessment.json")
    mlflow.set_tags(calibration.tags())
    return calibration


def _fit_and_evaluate(
    opts: _Options,
    dataset: _Dataset,
    found: SearchResult,
    choice: ThresholdChoice,
    timings: dict[str, float],
) -> tuple[Any, np.ndarray, dict[str, dict[str, float]]]:
    """Fit the final forest on the training period only (the hold-out stays unseen, for the
    gate later); score it on the hold-out days and beside the out-of-fold view."""
    X_tr, y_tr, _ = dataset.train
    X_ho, y_ho = dataset.holdout
    opts.say(f"fitting the final forest on {len(dataset.split.train):,} rows")
    t0 = time.perf_counter()
    pipeline = build_pipeline(
        found.best_params,
        n_estimators=opts.settings.n_estimators,
        seed=opts.seed,
        n_jobs=opts.n_jobs,
    ).fit(X_tr, y_tr)
    timings["final_fit_s"] = time.perf_counter() - t0
    p_ho = positive_proba(pipeline, X_ho)
    views = {
        "holdout_time": evaluate(y_ho, p_ho, choice.threshold, opts.floor),
        "oof_user": evaluate(y_tr, found.best_oof, choice.threshold, opts.floor),
    }
    for view, metrics in views.items():
        _log_view(view, metrics)
    headline = views["holdout_time"]
    mlflow.log_metrics({k: headline[k] for k in HEADLINE if np.isfinite(headline[k])})
    return pipeline, p_ho, views


def _compare_with_baselines(
    opts: _Options, dataset: _Dataset, views: dict[str, dict[str, float]]
) -> tuple[list[BaselineResult], bool]:
    """The plainest models on the same splits: a forest that does not beat them says so."""
    X_tr, y_tr, g_tr = dataset.train
    X_ho, y_ho = dataset.holdout
    opts.say("evaluating baselines")
    baselines = evaluate_baselines(
        X_tr,
        y_tr,
        dataset.folds,
        X_ho,
        y_ho,
        floor=opts.floor,
        confidence_z=opts.z,
        seed=opts.seed,
        groups=g_tr,
    )
    for b in baselines:
        _log_view(f"baseline.{b.name}", b.holdout)
    best_baseline = max(b.holdout["recall_at_floor"] for b in baselines)
    beats = views["holdout_time"]["recall_at_floor"] > best_baseline
    mlflow.set_tag("beats_baselines", str(beats).lower())
    return baselines, beats


def _log_artifacts_and_model(
    opts: _Options,
    dataset: _Dataset,
    pipeline: Any,
    p_ho: np.ndarray,
    found: SearchResult,
    choice: ThresholdChoice,
    views: dict[str, dict[str, float]],
    timings: dict[str, float],
) -> tuple[bytes | None, str]:
    """Plots, evaluation, reference profile, golden set, hold-out, ONNX; then the model itself.
    Returns the ONNX bytes (if exported) and the logged model's URI."""
    _, y_tr, _ = dataset.train
    X_ho, y_ho = dataset.holdout
    opts.say("writing artifacts")
    t0 = time.perf_counter()
    onnx_bytes = _write_and_log_artifacts(
        pipeline,
        dataset.frame,
        dataset.split,
        X_ho,
        y_ho,
        p_ho,
        y_tr,
        found.best_oof,
        choice,
        views,
        opts.floor,
        opts.seed,
    )
    X = dataset.X
    model_info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=infer_signature(X[:5], pipeline.predict_proba(X[:5])),
        input_example=X_ho[:3],
        pyfunc_predict_fn="predict_proba",
        # cloudpickle: skops would refuse sklearn's Tree type without an allow-list.
        serialization_format="cloudpickle",
        # Explicit requirements: MLflow's inference imports the model in a subprocess, which
        # costs seconds per run for a list we already know.
        pip_requirements=_pip_requirements(),
    )
    timings["artifacts_s"] = time.perf_counter() - t0
    return onnx_bytes, model_info.model_uri


def _write_and_log_artifacts(
    pipeline: Any,
    frame: pd.DataFrame,
    split: TimeSplit,
    X_ho: np.ndarray,
    y_ho: np.ndarray,
    p_ho: np.ndarray,
    y_tr: np.ndarray,
    oof: np.ndarray,
    choice: ThresholdChoice,
    views: dict[str, dict[str, float]],
    floor: float,
    seed: int,
) -> bytes | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        artifacts.pr_curve_png(
            out / "plots/pr_curve.png",
            {"hold-out (recent days)": (y_ho, p_ho), "out-of-fold (unseen users)": (y_tr, oof)},
            floor,
            choice.threshold,
        )
        artifacts.calibration_png(out / "plots/calibration.png", y_ho, p_ho)
        artifacts.write_json(out / "threshold.json", choice.as_dict())
        artifacts.write_json(
            out / "evaluation/confusion_matrix.json",
            {view: artifacts.confusion(m) for view, m in views.items()},
        )
        artifacts.permutation_importances(pipeline, X_ho, y_ho, seed=seed).to_csv(
            out / "evaluation/permutation_importance.csv", index=False
        )
        holdout = frame.iloc[split.holdout]
        recall_by_user = per_user_recall(
            holdout["user_id"].to_numpy(), y_ho, p_ho >= choice.threshold
        )
        artifacts.write_json(
            out / "evaluation/per_user_recall.json",
            {
                "users_with_events": len(recall_by_user),
                "quantiles": {
                    f"{q:g}": float(recall_by_user.quantile(q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)
                }
                if len(recall_by_user)
                else {},
                "share_never_alerted": float((recall_by_user == 0).mean())
                if len(recall_by_user)
                else 0.0,
                "by_user": recall_by_user.round(4).to_dict(),
            },
        )
        artifacts.write_json(out / PROFILE_ARTIFACT, build_reference_profile(holdout, p_ho, y_ho))
        artifacts.write_json(out / GOLDEN_ARTIFACT, artifacts.golden_set(pipeline, X_ho, seed=seed))
        keep = [c for c in ("event_id", "user_id", "measured_at") if c in holdout.columns]
        hold_table = holdout[[*keep, *FEATURE_NAMES, LABEL_COLUMN]].copy()
        if "event_id" in hold_table.columns:
            hold_table["event_id"] = hold_table["event_id"].astype(str)
        (out / HOLDOUT_ARTIFACT).parent.mkdir(parents=True, exist_ok=True)
        hold_table.to_parquet(out / HOLDOUT_ARTIFACT, index=False)
        onnx_bytes = _export_onnx(pipeline)
        if onnx_bytes is not None:
            (out / ONNX_ARTIFACT).parent.mkdir(parents=True, exist_ok=True)
            (out / ONNX_ARTIFACT).write_bytes(onnx_bytes)
        mlflow.log_artifacts(str(out))
    mlflow.set_tag("onnx", "logged" if onnx_bytes is not None else "exporter unavailable")
    return onnx_bytes


def _version_tags(
    threshold: float,
    floor: float,
    cutoff: pd.Timestamp,
    holdout: dict[str, float],
    beats: bool,
    has_onnx: bool,
) -> dict[str, str]:
    """What travels with a model version: its threshold above all, then what tables show."""
    return {
        TAG_THRESHOLD: repr(float(threshold)),
        TAG_FLOOR: repr(float(floor)),
        TAG_FEATURES_VERSION: str(FEATURES_VERSION),
        TAG_TRAIN_CUTOFF: cutoff.isoformat(),
        "holdout.precision": f"{holdout['precision']:.4f}",
        "holdout.recall": f"{holdout['recall']:.4f}",
        "holdout.pr_auc": f"{holdout['pr_auc']:.4f}",
        "holdout.alert_rate": f"{holdout['alert_rate']:.4f}",
        "beats_baselines": str(beats).lower(),
        "onnx": str(has_onnx).lower(),
    }
