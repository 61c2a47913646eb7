"""Write every alias move to the SQL ``deployments`` table (the operator's audit trail).

MLflow keeps the alias itself and tags; the SQL row adds who/why/when next to the retraining
run that caused it, queryable with the rest of the operational data. :class:`DeploymentRecorder`
is a subscriber of :class:`~fatigue_guard.lifecycle.gate.DeploymentEvent` on the lifecycle's bus.
"""

from __future__ import annotations

import logging

from sqlalchemy import exc as sa_exc

from fatigue_guard.config import Settings
from fatigue_guard.lifecycle.gate import DeploymentEvent
from fatigue_guard.storage.factory import Storage

log = logging.getLogger(__name__)


class DeploymentRecorder:
    """Write one ``deployments`` row per :class:`DeploymentEvent`.

    ``best_effort``: a database problem is logged and counted in :attr:`failures` instead of
    raised. For a command run by hand: the alias has already moved, and the operator is told.
    """

    def __init__(self, storage: Storage, settings: Settings, *, best_effort: bool = False) -> None:
        self._storage = storage
        self._settings = settings
        self._best_effort = best_effort
        self.failures = 0

    def __call__(self, event: DeploymentEvent) -> None:
        if event.model_name != self._settings.registered_model_name:
            return
        try:
            with self._storage.uow_factory(write=True) as uow:
                uow.deployments.add(
                    model_name=event.model_name,
                    alias="production",
                    from_version=event.previous_version,
                    to_version=event.version,
                    actor=event.actor,
                    reason=event.reason,
                    retrain_run_id=event.retrain_run_id,
                )
                uow.commit()
        except sa_exc.SQLAlchemyError as exc:
            if not self._best_effort:
                raise
            self.failures += 1
            log.warning("deployment not written to the SQL DB: %s", type(exc).__name__)
