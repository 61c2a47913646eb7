"""Validation gate, promotion and rollback: the only code that moves the ``production`` alias.

Gate: candidate and production are scored on one shared, recent, labelled hold-out
that neither trained on; the candidate must meet the precision floor and must not lose recall
beyond a tolerance. "Neither trained on" is enforced by time: each version records the first
instant it did not train on (``train_cutoff``), and only rows at or after both cut-offs count.

Advisory versions (registered although no threshold met the floor; they never alert) follow
three rules: an advisory candidate never replaces a production version that alerts; an alerting
candidate replaces an advisory production version when it meets the floor on the hold-out (the
advisory version alerts on nothing, so it has no recall to lose); and one advisory version
replaces another when it ranks the hold-out at least as well (PR-AUC), the only comparison two
versions that never alert allow.

Every alias move reads, judges, moves and publishes under one lock
(:mod:`fatigue_guard.lifecycle.alias_lock`): two promotions at once run one after the other, the
second judged against what the first left in production, so the alias and the audit trail agree.

Deployment history is kept as MLflow tags (each promoted version names the version it replaced,
which is what rollback follows), and every alias move is published as a
:class:`DeploymentEvent` on the :class:`~fatigue_guard.lifecycle.bus.MessageBus` the caller
passes in: its subscribers write the SQL ``deployments`` row and publish the edge bundle, without
this module knowing SQL or blob storage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.lifecycle.alias_lock import AliasLockUnavailable, production_alias_lock
from fatigue_guard.lifecycle.bus import MessageBus
from fatigue_guard.model.pipeline import positive_proba
from fatigue_guard.registry.models import (
    PRODUCTION,
    STAGING,
    TAG_GATE_REASON,
    TAG_GATE_RESULT,
    TAG_PREVIOUS,
    TAG_TRAIN_CUTOFF,
    RegisteredModel,
    get_model_by_alias,
    get_model_version,
    load_holdout,
    load_pipeline,
)
from fatigue_guard.registry.tracking import configure_mlflow
from fatigue_guard.training.data import prepare_frame
from fatigue_guard.training.evaluation import evaluate

Action = Literal["initial", "promote", "rollback"]
HISTORY_TAG = "deployment.history"
HISTORY_LENGTH = 20  # MLflow tag values are bounded; older entries live in the SQL table


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    candidate_version: str
    production_version: str | None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentEvent:
    """Who moved ``production`` to which version, from which, when and why."""

    action: Action
    model_name: str
    version: str
    previous_version: str | None
    actor: str
    reason: str
    at: datetime
    gate: GateResult | None = None
    # The retraining run that caused the move, for the SQL audit row; None when done by hand.
    retrain_run_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


@dataclass(frozen=True)
class PromotionOutcome:
    promoted: bool
    gate: GateResult
    event: DeploymentEvent | None


class DeploymentError(RuntimeError):
    """Promotion or rollback cannot even be attempted (no candidate, nothing to roll back to,
    the alias lock cannot be taken)."""


@contextmanager
def _one_alias_move_at_a_time(settings: Settings) -> Iterator[None]:
    try:
        with production_alias_lock(settings):
            yield
    except AliasLockUnavailable as exc:
        raise DeploymentError(f"the production alias was not moved: {exc}") from exc


def _tag_history(client: MlflowClient, event: DeploymentEvent) -> None:
    """Keep ``event`` in the registry's own history (tags), after the alias has moved."""
    name = event.model_name
    try:
        history = json.loads(client.get_registered_model(name).tags.get(HISTORY_TAG, "[]"))
    except (MlflowException, ValueError):
        history = []
    entry = {k: v for k, v in event.as_dict().items() if k != "gate"}
    history = [*history, entry][-HISTORY_LENGTH:]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    prefix = f"deployment.{event.action}"
    client.set_model_version_tag(name, event.version, f"{prefix}.at", event.at.isoformat())
    client.set_model_version_tag(name, event.version, f"{prefix}.by", event.actor)
    client.set_model_version_tag(name, event.version, f"{prefix}.reason", event.reason)


def _cutoff(client: MlflowClient, model: RegisteredModel) -> pd.Timestamp | None:
    tags = client.get_model_version(model.name, model.version).tags or {}
    value = tags.get(TAG_TRAIN_CUTOFF)
    return pd.Timestamp(value) if value else None


def shared_holdout(
    client: MlflowClient,
    settings: Settings,
    candidate: RegisteredModel,
    production: RegisteredModel,
    holdout: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Labelled rows neither version trained on: the given frame, else the candidate's hold-out,
    restricted to rows at or after both versions' training cut-offs."""
    raw = holdout if holdout is not None else load_holdout(settings, candidate)
    if raw is None or raw.empty:
        return pd.DataFrame()
    # Same rules as training: rows that break the contract or lack a label do not judge anyone.
    frame, report = prepare_frame(raw)
    frame = frame.loc[report.valid]
    frame[LABEL_COLUMN] = frame[LABEL_COLUMN].astype(bool)
    cutoffs = [
        c for c in (_cutoff(client, candidate), _cutoff(client, production)) if c is not None
    ]
    if cutoffs:
        frame = frame[frame["measured_at"] >= max(cutoffs)]
    return frame


def evaluate_gate(
    settings: Settings,
    candidate: RegisteredModel,
    production: RegisteredModel | None,
    *,
    holdout: pd.DataFrame | None = None,
) -> GateResult:
    """Judge ``candidate`` against ``production`` (or against the floor alone if none)."""
    client = configure_mlflow(settings)
    floor = settings.precision_floor
    if production is None:
        return GateResult(True, "no production model yet", candidate.version, None)
    if production.version == candidate.version:
        return GateResult(
            False, "candidate is already production", candidate.version, production.version
        )
    if candidate.advisory and not production.advisory:
        return GateResult(
            False,
            f"candidate v{candidate.version} is advisory (no threshold met the floor in "
            f"training): it never replaces production v{production.version}, which alerts",
            candidate.version,
            production.version,
        )
    frame = shared_holdout(client, settings, candidate, production, holdout)
    positives = int(frame[LABEL_COLUMN].astype(bool).sum()) if len(frame) else 0
    if positives < settings.gate_min_positives:
        return GateResult(
            False,
            f"shared hold-out too small: {len(frame)} rows, {positives} fatigue events "
            f"(need {settings.gate_min_positives})",
            candidate.version,
            production.version,
        )
    X = feature_matrix(frame)
    y = frame[LABEL_COLUMN].astype(bool).to_numpy()
    cand = evaluate(
        y, positive_proba(load_pipeline(settings, candidate), X), _alerts_at(candidate), floor
    )
    prod = evaluate(
        y, positive_proba(load_pipeline(settings, production), X), _alerts_at(production), floor
    )
    metrics = {
        "rows": float(len(frame)),
        "positives": float(positives),
        "candidate_precision": cand["precision"],
        "candidate_recall": cand["recall"],
        "candidate_pr_auc": cand["pr_auc"],
        "production_precision": prod["precision"],
        "production_recall": prod["recall"],
        "production_pr_auc": prod["pr_auc"],
    }
    if candidate.advisory:
        return _advisory_over_advisory(candidate, production, cand, prod, metrics)
    problems = []
    if cand["precision"] < floor - settings.gate_precision_tolerance:
        problems.append(
            f"precision {cand['precision']:.3f} below floor {floor:.2f} "
            f"(tolerance {settings.gate_precision_tolerance:.2f})"
        )
    if cand["recall"] < prod["recall"] - settings.gate_recall_tolerance:
        problems.append(
            f"recall {cand['recall']:.3f} < production v{production.version} recall "
            f"{prod['recall']:.3f} - tolerance {settings.gate_recall_tolerance:.2f}"
        )
    if problems:
        return GateResult(
            False, "; ".join(problems), candidate.version, production.version, metrics
        )
    reason = (
        f"precision {cand['precision']:.3f} >= floor {floor:.2f}; recall {cand['recall']:.3f} vs "
        f"production {prod['recall']:.3f} on {len(frame)} shared hold-out rows"
    )
    if production.advisory:
        reason += f"; production v{production.version} was advisory: alerts turn on"
    return GateResult(True, reason, candidate.version, production.version, metrics)


def _alerts_at(model: RegisteredModel) -> float | None:
    """The threshold a version alerts at on the hold-out; ``None`` (never) when advisory."""
    return None if model.advisory else model.threshold


def _advisory_over_advisory(
    candidate: RegisteredModel,
    production: RegisteredModel,
    cand: dict[str, float],
    prod: dict[str, float],
    metrics: dict[str, float],
) -> GateResult:
    """Neither version alerts, so precision and recall at a threshold say nothing: the one
    that ranks the shared hold-out at least as well (PR-AUC) serves."""
    passed = cand["pr_auc"] >= prod["pr_auc"]
    reason = (
        f"advisory over advisory: PR-AUC {cand['pr_auc']:.3f} vs production "
        f"v{production.version} {prod['pr_auc']:.3f} ({'not lower' if passed else 'lower'}); "
        "alerts stay off"
    )
    return GateResult(passed, reason, candidate.version, production.version, metrics)


def _tag_gate(client: MlflowClient, name: str, gate: GateResult, at: datetime) -> None:
    v = gate.candidate_version
    client.set_model_version_tag(name, v, TAG_GATE_RESULT, "passed" if gate.passed else "rejected")
    client.set_model_version_tag(name, v, TAG_GATE_REASON, gate.reason[:4000])
    client.set_model_version_tag(name, v, "gate.at", at.isoformat())
    client.set_model_version_tag(
        name, v, "gate.metrics", json.dumps({k: round(x, 4) for k, x in gate.metrics.items()})
    )


def promote(
    settings: Settings,
    version: str | None = None,
    *,
    actor: str,
    reason: str,
    holdout: pd.DataFrame | None = None,
    bus: MessageBus | None = None,
    retrain_run_id: int | None = None,
) -> PromotionOutcome:
    """Gate ``version`` (default: the ``staging`` alias) and, if it passes, make it production.

    A rejected candidate stays registered, tagged ``gate.result=rejected`` with the reason.
    """
    with _one_alias_move_at_a_time(settings):
        client = configure_mlflow(settings)
        name = settings.registered_model_name
        if version is None:
            candidate = get_model_by_alias(settings, STAGING)
            if candidate is None:
                raise DeploymentError(f"no version of {name!r} has the {STAGING!r} alias")
        else:
            candidate = get_model_version(settings, version)
        production = get_model_by_alias(settings, PRODUCTION)
        gate = evaluate_gate(settings, candidate, production, holdout=holdout)
        now = datetime.now(UTC)
        _tag_gate(client, name, gate, now)
        if not gate.passed:
            return PromotionOutcome(False, gate, None)
        return PromotionOutcome(
            True,
            gate,
            _move_production(
                client,
                settings,
                candidate,
                production,
                "promote",
                actor,
                reason,
                now,
                gate,
                bus=bus,
                retrain_run_id=retrain_run_id,
            ),
        )


def _move_production(
    client: MlflowClient,
    settings: Settings,
    target: RegisteredModel,
    current: RegisteredModel | None,
    action: Action,
    actor: str,
    reason: str,
    at: datetime,
    gate: GateResult | None = None,
    *,
    bus: MessageBus | None,
    retrain_run_id: int | None = None,
) -> DeploymentEvent:
    name = settings.registered_model_name
    client.set_registered_model_alias(name, PRODUCTION, target.version)
    if action != "rollback":
        if current is not None:
            client.set_model_version_tag(name, target.version, TAG_PREVIOUS, current.version)
        staging = get_model_by_alias(settings, STAGING)
        if staging is not None and staging.version == target.version:
            client.delete_registered_model_alias(name, STAGING)
    event = DeploymentEvent(
        action=action,
        model_name=name,
        version=target.version,
        previous_version=current.version if current else None,
        actor=actor,
        reason=reason,
        at=at,
        gate=gate,
        retrain_run_id=retrain_run_id,
    )
    _tag_history(client, event)
    if bus is not None:
        bus.publish(event)
    return event


def make_initial_production(
    settings: Settings,
    model: RegisteredModel,
    *,
    actor: str,
    reason: str,
    bus: MessageBus | None = None,
    retrain_run_id: int | None = None,
) -> DeploymentEvent:
    """The first model ever registered serves directly: there is nothing to compare it with."""
    with _one_alias_move_at_a_time(settings):
        client = configure_mlflow(settings)
        return _move_production(
            client,
            settings,
            model,
            None,
            "initial",
            actor,
            reason,
            datetime.now(UTC),
            bus=bus,
            retrain_run_id=retrain_run_id,
        )


def rollback(
    settings: Settings, *, actor: str, reason: str, bus: MessageBus | None = None
) -> DeploymentEvent:
    """Move ``production`` back to the version the current one replaced."""
    with _one_alias_move_at_a_time(settings):
        client = configure_mlflow(settings)
        name = settings.registered_model_name
        current = get_model_by_alias(settings, PRODUCTION)
        if current is None:
            raise DeploymentError(f"{name!r} has no production version to roll back")
        tags = client.get_model_version(name, current.version).tags or {}
        previous = tags.get(TAG_PREVIOUS)
        if not previous:
            raise DeploymentError(
                f"production version {current.version} records no previous version to roll back to"
            )
        target = get_model_version(settings, previous)
        client.set_model_version_tag(name, current.version, "deployment.rolled_back", "true")
        return _move_production(
            client, settings, target, current, "rollback", actor, reason, datetime.now(UTC), bus=bus
        )
