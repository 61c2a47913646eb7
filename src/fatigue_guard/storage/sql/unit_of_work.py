"""Unit of work: one SQL transaction, with every repository bound to it.

Usage::

    with uow_factory(write=True) as uow:
        uow.predictions.add_many([record])
        uow.commit()

Leaving the block without ``commit()`` rolls back, so a failure half-way never leaves a
prediction without its outbox row (or the reverse).

``uow_factory(write=True)`` declares a transaction that writes: on SQLite, the writers of one
process then take turns on a :class:`~fatigue_guard.storage.sql.writer_lock.WriterLock` (see there
for why). PostgreSQL locks rows, not the database, so there the flag does nothing.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fatigue_guard.storage.sql.audit_trail import DeploymentRepository, RetrainRunRepository
from fatigue_guard.storage.sql.repository import (
    DeviceRepository,
    DriftReportRepository,
    FeedbackRepository,
    JobLockRepository,
    OutboxRepository,
    PredictionRepository,
    UserDataRepository,
)
from fatigue_guard.storage.sql.tombstones import TombstoneRepository
from fatigue_guard.storage.sql.writer_lock import WriterLock


class SqlAlchemyUnitOfWork:
    """A session plus the repositories that share it."""

    predictions: PredictionRepository
    feedback: FeedbackRepository
    devices: DeviceRepository
    outbox: OutboxRepository
    users: UserDataRepository
    tombstones: TombstoneRepository
    locks: JobLockRepository
    drift_reports: DriftReportRepository
    retrain_runs: RetrainRunRepository
    deployments: DeploymentRepository

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        write_lock: WriterLock | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._write_lock = write_lock
        self.session: Session | None = None

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        if self._write_lock is not None:
            self._write_lock.acquire()
        session = self._session_factory()
        self.session = session
        self.predictions = PredictionRepository(session)
        self.feedback = FeedbackRepository(session)
        self.devices = DeviceRepository(session)
        self.outbox = OutboxRepository(session)
        self.users = UserDataRepository(session)
        self.tombstones = TombstoneRepository(session)
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
            if self._write_lock is not None:
                self._write_lock.release()

    def commit(self) -> None:
        assert self.session is not None, "use the unit of work as a context manager"
        self.session.commit()

    def rollback(self) -> None:
        assert self.session is not None
        self.session.rollback()


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = False) -> SqlAlchemyUnitOfWork:
        """A unit of work; ``write=True`` if it will write."""
        ...


def unit_of_work_factory(engine: Engine, write_lock: WriterLock | None = None) -> UnitOfWorkFactory:
    """A factory of fresh units of work on ``engine`` (thread-safe: one session per call).

    On SQLite, writers take turns on ``write_lock`` (a new one if not given; pass one to share
    it with other writers of the process).
    """
    sessions = sessionmaker(engine, expire_on_commit=False)
    lock = write_lock or (WriterLock() if engine.dialect.name == "sqlite" else None)

    def make(*, write: bool = False) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(sessions, lock if write else None)

    return make
