"""Labelled live records as training data: served predictions joined with feedback, to a cutoff.

One definition shared by ``fatigue-guard train --live`` and the retraining job
(:mod:`fatigue_guard.lifecycle.retrain`), so both train on the same thing: predictions measured in
``[since, until)`` that received feedback, one row per ``event_id`` (the data plane's reader
deduplicates; :func:`~fatigue_guard.training.data.with_live_records` then lets a live row replace
a baseline row with the same ``event_id``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import pandas as pd

# "All live records": no prediction can predate the Unix epoch, and the feature store lists its
# date partitions rather than walking every day from the start, so an early start costs nothing.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LiveDatasetSource(Protocol):
    """What reading live records needs from the data plane (the storage facade provides it)."""

    def read_live_dataset(
        self, start: datetime, end: datetime, *, labelled_only: bool = False
    ) -> pd.DataFrame: ...


def read_live_labelled(
    source: LiveDatasetSource, since: datetime | None, until: datetime
) -> pd.DataFrame:
    """Labelled live records measured in ``[since, until)``; ``since=None`` means all of them.

    Unlabelled predictions are left out: a row without feedback teaches the model nothing.
    """
    return source.read_live_dataset(since or EPOCH, until, labelled_only=True)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or datetime as an aware UTC datetime (naive values are taken as UTC).

    A bare date means 00:00 UTC that day, so ``--live-until 2026-02-01`` stops before February.
    Raises ``ValueError`` on anything else.
    """
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def live_summary(frame: pd.DataFrame) -> tuple[int, int]:
    """``(rows, users)`` of a live table, for progress messages and run tags."""
    if frame.empty:
        return 0, 0
    return len(frame), int(frame["user_id"].nunique())
