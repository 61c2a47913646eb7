"""Unit of work: one SQL transaction, with every repository bound to it.

Usage::

    with uow_factory() as uow:
        uow.predictions.add_many([record])
        uow.commit()

Leaving the block without ``commit()`` rolls back, so a failure half-way never leaves a
prediction without its outbox row (or the reverse).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fatigue_guard.storage.lifecycle import DeploymentRepository, RetrainRunRepository
from fatigue_guard.storage.repository import (
    DeviceRepository,
    DriftReportRepository,
    FeedbackRepository,
    JobLockRepository,
    OutboxRepository,
    PredictionRepository,
    UserDataRepository,
)


class SqlAlchemyUnitOfWork:
    """A session plus the repositories that share it."""

    predictions: PredictionRepository
    feedback: FeedbackRepository
    devices: DeviceRepository
    outbox: OutboxRepository
    users: UserDataRepository
    locks: JobLockRepository
    drift_reports: DriftReportRepository
    retrain_runs: RetrainRunRepository
    deployments: DeploymentRepository

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory
        self.session: Session | None = None

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        session = self._session_factory()
        self.session = session
        self.predictions = PredictionRepository(session)
        self.feedback = FeedbackRepository(session)
        self.devices = DeviceRepository(session)
        self.outbox = OutboxRepository(session)
        self.users = UserDataRepository(session)
        self.locks = JobLockRepository(session)
        self.drift_reports = DriftReportRepository(session)
        self.retrain_runs = RetrainRunRepository(session)
        self.deployments = DeploymentRepository(session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.session is not None
        try:
            self.session.rollback()
        finally:
            self.session.close()
            self.session = None

    def commit(self) -> None:
        assert self.session is not None, "use the unit of work as a context manager"
        self.session.commit()

    def rollback(self) -> None:
        assert self.session is not None
        self.session.rollback()


UnitOfWorkFactory = Callable[[], SqlAlchemyUnitOfWork]


def unit_of_work_factory(engine: Engine) -> UnitOfWorkFactory:
    """A factory of fresh units of work on ``engine`` (thread-safe: one session per call)."""
    sessions = sessionmaker(engine, expire_on_commit=False)
    return lambda: SqlAlchemyUnitOfWork(sessions)
