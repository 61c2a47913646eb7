"""Each person's day history for the baselines the API computes, in SQL.

Two small tables (``personal_days``, ``personal_moments``; see ``tables``): one row per person
and local date with what that date contributes to later baselines, and one row per
server-scored prediction with its local date, so that its feedback is counted on the date the
moment was on. Every replica reads and writes the same rows, so a person's history outlives a
process and is shared by all of them. People are stored under a salted hash of their user id:
the history names nobody by itself, and erasure finds the rows by the same hash.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fatigue_guard.contract.baselines import DayRecord, PersonalHistory
from fatigue_guard.storage.sql.tables import PersonalDay, PersonalMoment, utcnow
from fatigue_guard.storage.sql.tombstones import erased_user_hash

if TYPE_CHECKING:  # the unit of work's erasure imports this module
    from fatigue_guard.storage.sql.unit_of_work import UnitOfWork, UnitOfWorkFactory

_SALT: Final[bytes] = b"fatigue-guard/personal-history/v1:"
_DAYS = PersonalDay.__table__
_MOMENTS = PersonalMoment.__table__
_MEASURES: Final[tuple[str, ...]] = ("sleep_h", "midpoint_h", "resting_hr_bpm", "hrv_rmssd_ms")


def user_key(user_id: str) -> str:
    """The history's name for ``user_id``: hex SHA-256 under a fixed, app-specific salt."""
    return hashlib.sha256(_SALT + user_id.encode()).hexdigest()


def _insert(session: Session) -> Any:
    # Both dialects spell "insert, or on conflict do ..." the same way.
    assert session.bind is not None
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


def _merge_days(session: Session, days: dict[tuple[str, date], DayRecord]) -> None:
    """Add each record to its person's row for its date: a measure only where the day has none
    yet (the first reading of a night stands for it), reports added."""
    rows = []
    for (key, day), record in days.items():
        row = {"user_key": key, "day": day, "reports": record.reports}
        row["positives"] = record.positives
        row.update({name: getattr(record, name) for name in _MEASURES})
        rows.append(row)
    statement = _insert(session)(_DAYS)
    merged: dict[str, Any] = {
        name: func.coalesce(_DAYS.c[name], statement.excluded[name]) for name in _MEASURES
    }
    merged["reports"] = _DAYS.c.reports + statement.excluded.reports
    merged["positives"] = _DAYS.c.positives + statement.excluded.positives
    upsert = statement.on_conflict_do_update(index_elements=["user_key", "day"], set_=merged)
    session.execute(upsert, rows)


def _overtaken(user_id: str, queued_at: datetime, erased: dict[str, datetime]) -> bool:
    at = erased.get(erased_user_hash(user_id))
    return at is not None and queued_at <= at


def erase_personal_history(session: Session, user_id: str) -> int:
    """Delete ``user_id``'s history rows in the caller's transaction; how many went."""
    key = user_key(user_id)
    gone = 0
    for table in (_MOMENTS, _DAYS):
        result = session.execute(delete(table).where(table.c.user_key == key))
        gone += int(result.rowcount)  # type: ignore[attr-defined]
    return gone


@dataclass(frozen=True, slots=True)
class MomentRow:
    """A scored moment: its local date, its night's date and what the night adds."""

    user_id: str
    event_id: uuid.UUID
    moment_day: date
    night_day: date
    night: DayRecord
    server_computed: int
    # When the API took it: a write that an erasure overtook is dropped (see ``add``).
    queued_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class LabelRow:
    """A fatigue report, counted on its moment's date."""

    user_id: str
    day: date
    positive: bool
    queued_at: datetime = field(default_factory=utcnow)


class PersonalHistoryStore:
    """Load, extend and label people's day histories (thread-safe: a unit of work per call)."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    def load(self, user_id: str) -> PersonalHistory:
        """Every recorded day of ``user_id``, in one query."""
        history = PersonalHistory()
        with self._uow_factory() as uow:
            assert uow.session is not None
            rows = uow.session.execute(
                select(_DAYS).where(_DAYS.c.user_key == user_key(user_id))
            ).mappings()
            for row in rows:
                history.days[row["day"]] = DayRecord(
                    **{name: row[name] for name in _MEASURES},
                    reports=row["reports"],
                    positives=row["positives"],
                )
        return history

    def add(self, moments: Sequence[MomentRow], labels: Sequence[LabelRow]) -> None:
        """Record scored moments (with their nights) and fatigue reports, in one transaction
        whatever the batch's size.

        A re-sent moment changes nothing: its ``event_id`` is there already and its night only
        fills measures still missing; a label carries the date of its moment.
        """
        with self._uow_factory(write=True) as uow:
            # Fenced against erasures like the prediction records: a moment or label queued
            # before its person was erased is part of what was erased, not new history.
            uow.tombstones.take_recording_fence()
            erased = uow.tombstones.erased_at([r.user_id for r in (*moments, *labels)])
            moments = [m for m in moments if not _overtaken(m.user_id, m.queued_at, erased)]
            labels = [b for b in labels if not _overtaken(b.user_id, b.queued_at, erased)]
            self._write(uow, moments, labels)
            uow.commit()

    def _write(
        self, uow: UnitOfWork, moments: Sequence[MomentRow], labels: Sequence[LabelRow]
    ) -> None:
        days: dict[tuple[str, date], DayRecord] = {}
        for moment in moments:
            day = days.setdefault((user_key(moment.user_id), moment.night_day), DayRecord())
            day.fill(moment.night)
        for label in labels:
            day = days.setdefault((user_key(label.user_id), label.day), DayRecord())
            day.fill(DayRecord(reports=1, positives=int(label.positive)))
        session = uow.session
        assert session is not None
        if moments:
            rows = [
                {
                    "event_id": m.event_id,
                    "user_key": user_key(m.user_id),
                    "day": m.moment_day,
                    "server_computed": m.server_computed,
                }
                for m in moments
            ]
            insert = _insert(session)(_MOMENTS).on_conflict_do_nothing(index_elements=["event_id"])
            session.execute(insert, rows)
        if days:
            _merge_days(session, days)

    def add_label(self, user_id: str, event_id: uuid.UUID, positive: bool) -> date | None:
        """Count a fatigue report on its moment's date; that date, or ``None`` when the
        moment is not one the API scored (an edge prediction, or another user's)."""
        key = user_key(user_id)
        with self._uow_factory(write=True) as uow:
            session = uow.session
            assert session is not None
            day = session.execute(
                select(_MOMENTS.c.day).where(
                    _MOMENTS.c.event_id == event_id, _MOMENTS.c.user_key == key
                )
            ).scalar_one_or_none()
            if day is None:
                return None
            _merge_days(session, {(key, day): DayRecord(reports=1, positives=int(positive))})
            uow.commit()
        return day

    def server_computed(self, event_id: uuid.UUID) -> int | None:
        """The bit mask of baseline features the API computed for ``event_id``."""
        with self._uow_factory() as uow:
            assert uow.session is not None
            return uow.session.execute(
                select(_MOMENTS.c.server_computed).where(_MOMENTS.c.event_id == event_id)
            ).scalar_one_or_none()
