"""Repositories for the model lifecycle's audit trail: retraining runs and deployments.

Together with drift reports they form the chain an operator follows backwards from a served
version: deployment -> retraining run -> drift report, each row naming the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fatigue_guard.storage.sql.tables import Deployment, RetrainRun, utcnow


class RetrainRunRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def start(self, trigger: str, reason: str, drift_report_id: int | None = None) -> RetrainRun:
        run = RetrainRun(
            trigger=trigger,
            reason=reason,
            drift_report_id=drift_report_id,
            status="running",
            started_at=utcnow(),
        )
        self.session.add(run)
        self.session.flush()
        return run

    def get(self, run_id: int) -> RetrainRun | None:
        return self.session.get(RetrainRun, run_id)

    def finish(self, run_id: int, status: str, **fields: Any) -> RetrainRun:
        run = self.session.get(RetrainRun, run_id)
        if run is None:
            raise LookupError(f"no retrain run {run_id}")
        run.status = status
        run.finished_at = utcnow()
        for name, value in fields.items():
            setattr(run, name, value)
        self.session.flush()
        return run

    def last_started(self, since: datetime | None = None) -> RetrainRun | None:
        stmt = select(RetrainRun).order_by(RetrainRun.started_at.desc(), RetrainRun.id.desc())
        if since is not None:
            stmt = stmt.where(RetrainRun.started_at >= since)
        return self.session.scalars(stmt).first()

    def all(self) -> list[RetrainRun]:
        return list(self.session.scalars(select(RetrainRun).order_by(RetrainRun.id)))


class DeploymentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        *,
        model_name: str,
        alias: str,
        from_version: str | None,
        to_version: str,
        actor: str,
        reason: str,
        retrain_run_id: int | None = None,
    ) -> Deployment:
        row = Deployment(
            model_name=model_name,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            actor=actor,
            reason=reason,
            retrain_run_id=retrain_run_id,
            created_at=utcnow(),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def history(self, model_name: str) -> list[Deployment]:
        return list(
            self.session.scalars(
                select(Deployment)
                .where(Deployment.model_name == model_name)
                .order_by(Deployment.created_at, Deployment.id)
            )
        )
