"""Write every alias move to the SQL ``deployments`` table (the operator's audit trail).

MLflow keeps the alias itself and tags; the SQL row adds who/why/when next to the retraining
run that caused it, queryable with the rest of the operational data.
"""

from __future__ import annotations

import logging

from sqlalchemy import exc as sa_exc

from fatigue_guard.config import Settings
from fatigue_guard.storage.factory import Storage, build_storage

log = logging.getLogger(__name__)


def record_deployment(
    storage: Storage,
    settings: Settings,
    from_version: str | None,
    to_version: str,
    actor: str,
    reason: str,
    *,
    retrain_run_id: int | None = None,
    alias: str = "production",
) -> None:
    with storage.uow_factory(write=True) as uow:
        uow.deployments.add(
            model_name=settings.registered_model_name,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            actor=actor,
            reason=reason,
            retrain_run_id=retrain_run_id,
        )
        uow.commit()


def record_deployment_best_effort(
    settings: Settings, from_version: str | None, to_version: str, actor: str, reason: str
) -> bool:
    """For the CLI: the alias has already moved, so a DB problem is reported, not raised."""
    storage = build_storage(settings)
    try:
        record_deployment(storage, settings, from_version, to_version, actor, reason)
        return True
    except sa_exc.SQLAlchemyError as exc:
        log.warning("deployment not written to the SQL DB: %s", type(exc).__name__)
        return False
    finally:
        storage.close()
