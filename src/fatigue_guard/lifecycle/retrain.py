"""The retraining job: assemble data -> train -> register ``staging`` -> gate -> ``production``.

Started by a monitoring breach (in-process worker) or by ``fatigue-guard retrain`` (cron, a
Kubernetes CronJob, an Azure ML schedule). At most one runs at a time across every replica (a
lease row in the SQL DB), and a cool-down keeps a persistent drift from retraining in a loop.
Every step leaves a row: drift report -> retrain run (MLflow run id, model version, gate result)
-> deployment, each with its reason.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from fatigue_guard.config import Settings
from fatigue_guard.lifecycle.bus import MessageBus
from fatigue_guard.storage.factory import Storage

log = logging.getLogger(__name__)

LOCK_NAME = "retrain"


@dataclass
class RetrainOutcome:
    """What one invocation did. ``status``: skipped, failed, rejected or promoted."""

    status: str
    reason: str
    run_id: int | None = None
    mlflow_run_id: str | None = None
    model_version: str | None = None
    promoted: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def holder_id() -> str:
    """Names this run in the lease row: the process, so an operator can see who holds it, and a
    token of the run, because the lease lets its holder take it again and two runs of one
    process (a scheduled monitor and a manual trigger, or two workers) must still exclude each
    other."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def baseline_frame(settings: Settings) -> pd.DataFrame | None:
    """The reference dataset to retrain on besides live data.

    ``FATIGUE_GUARD_BASELINE_DATA`` if set, else the local file the production version was
    trained on (from its MLflow lineage), else none (train on live labelled data alone).
    """
    from fatigue_guard.contract.tables import read_table

    if settings.baseline_data is not None:
        return read_table(settings.baseline_data)
    source = production_training_source(settings)
    if source is not None and source.exists():
        return read_table(source)
    return None


def production_training_source(settings: Settings) -> Path | None:
    from fatigue_guard.registry import configure_mlflow, get_model_by_alias
    from fatigue_guard.registry.lineage import training_file

    model = get_model_by_alias(settings, "production")
    if model is None:
        return None
    return training_file(configure_mlflow(settings).get_run(model.run_id).data.tags)


def live_labelled(storage: Storage, settings: Settings, now: datetime) -> pd.DataFrame:
    from fatigue_guard.training.live import read_live_labelled

    start = now - timedelta(days=settings.retrain_live_window_days)
    return read_live_labelled(storage, start, now)


def run_retraining(
    settings: Settings,
    storage: Storage,
    *,
    bus: MessageBus,
    trigger: str,
    reason: str,
    drift_report_id: int | None = None,
    now: datetime | None = None,
    ignore_cooldown: bool = False,
) -> RetrainOutcome:
    """Run the whole job once, unless another replica holds the lease or the cool-down runs.

    A promotion is published on ``bus`` (the SQL audit row and the edge bundle subscribe there).
    """
    now = now or datetime.now(UTC)
    holder = holder_id()
    with storage.uow_factory(write=True) as uow:
        acquired = uow.locks.try_acquire(
            LOCK_NAME, holder, timedelta(seconds=settings.retrain_lock_ttl_s)
        )
        if not acquired:
            return RetrainOutcome("skipped", "another replica is retraining (lease held)")
        # Under the lease: a run that finished between a look at the cool-down and taking the
        # lease would otherwise be followed by a second one. Leaving without a commit gives the
        # lease back.
        if not ignore_cooldown:
            recent = uow.retrain_runs.last_started(
                since=now - timedelta(hours=settings.monitor_cooldown_h)
            )
            if recent is not None:
                return RetrainOutcome(
                    "skipped", f"cool-down: retrain run {recent.id} started {recent.started_at}"
                )
        run = uow.retrain_runs.start(trigger, reason, drift_report_id)
        uow.commit()
        run_id = run.id
    log.info("retrain run %s started: %s", run_id, reason)
    try:
        outcome = _train_gate_promote(settings, storage, bus, run_id, trigger, reason, now)
    except Exception as exc:
        log.exception("retrain run %s failed", run_id)
        outcome = RetrainOutcome("failed", f"{type(exc).__name__}: {exc}", run_id=run_id)
    finally:
        with storage.uow_factory(write=True) as uow:
            uow.locks.release(LOCK_NAME, holder)
            uow.commit()
    with storage.uow_factory(write=True) as uow:
        uow.retrain_runs.finish(
            run_id,
            outcome.status,
            mlflow_run_id=outcome.mlflow_run_id,
            model_version=outcome.model_version,
            promoted=outcome.promoted,
            details={"outcome_reason": outcome.reason, **outcome.details},
        )
        uow.commit()
    return outcome


def _train_gate_promote(
    settings: Settings,
    storage: Storage,
    bus: MessageBus,
    run_id: int,
    trigger: str,
    reason: str,
    now: datetime,
) -> RetrainOutcome:
    from fatigue_guard.lifecycle.gate import promote
    from fatigue_guard.lifecycle.registration import train_and_register
    from fatigue_guard.model.threshold import NoThresholdMeetsFloor

    live = live_labelled(storage, settings, now)
    baseline = baseline_frame(settings)
    if baseline is None and live.empty:
        return RetrainOutcome("failed", "no baseline data and no labelled live data", run_id)
    data = baseline if baseline is not None else live
    details: dict[str, Any] = {
        "baseline_rows": 0 if baseline is None else len(baseline),
        "live_labelled_rows": len(live),
    }
    try:
        result = train_and_register(
            settings,
            data,
            live=live if baseline is not None else None,
            actor=f"retrain:{run_id}",
            bus=bus,
            retrain_run_id=run_id,
            advisory=settings.retrain_advisory,
        )
    except NoThresholdMeetsFloor as exc:
        return RetrainOutcome(
            "rejected", str(exc), run_id, mlflow_run_id=exc.run_id, details=details
        )
    if result.registered is None:
        return RetrainOutcome("failed", "training registered nothing", run_id, result.run_id)
    version = result.registered.version
    if result.alias == "production":  # first model ever: nothing to gate against
        return RetrainOutcome("promoted", "first model", run_id, result.run_id, version, True)
    outcome = promote(
        settings,
        version,
        actor=f"retrain:{run_id}",
        reason=f"{trigger}: {reason}",
        bus=bus,
        retrain_run_id=run_id,
    )
    details["gate"] = {"passed": outcome.gate.passed, "reason": outcome.gate.reason}
    details["gate_metrics"] = outcome.gate.metrics
    if not outcome.promoted or outcome.event is None:
        return RetrainOutcome(
            "rejected", outcome.gate.reason, run_id, result.run_id, version, False, details
        )
    return RetrainOutcome(
        "promoted", outcome.gate.reason, run_id, result.run_id, version, True, details
    )
