"""What the API and the jobs may ask of a recorder, wherever it runs.

Two implementations: :class:`~fatigue_guard.storage.recording.recorder.PredictionRecorder` does
the work in the calling process; :class:`~fatigue_guard.storage.recording.recorder_process.
RecorderProcess` hands it to a child process and falls back to an in-process recorder while no
child runs. Callers type against this protocol, so either can be configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from fatigue_guard.storage.recording.recorder import BatchResult, RecorderStats
from fatigue_guard.storage.records import PredictionRecord


class Recorder(Protocol):
    """Record answered predictions durably and idempotently on ``event_id``."""

    def record(self, record: PredictionRecord) -> PredictionRecord:
        """Store ``record`` (returns once durable); the earlier answer if event_id existed."""
        ...

    async def record_async(self, record: PredictionRecord) -> PredictionRecord:
        """:meth:`record` for the event loop."""
        ...

    def record_many(self, records: Sequence[PredictionRecord]) -> BatchResult:
        """Store many in one transaction (an edge sync); which were new."""
        ...

    def get(self, event_id: UUID) -> PredictionRecord | None: ...

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Replay the spool and ship the outbox until both are empty, or ``timeout_s``."""
        ...

    def stats(self) -> RecorderStats: ...

    def start(self) -> None: ...

    def stop(self, timeout_s: float = 10.0) -> None: ...
