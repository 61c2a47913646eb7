"""Data plane: SQL metadata, the blob feature store, the outbox that links them.

The app builds one :class:`Storage` with :func:`build_storage` and calls its recorder
(:class:`PredictionRecorder`) on the request path; see :mod:`fatigue_guard.storage.factory`.
"""

from fatigue_guard.storage.factory import Storage, build_storage
from fatigue_guard.storage.recording.recorder import BatchResult, PredictionRecorder, RecorderStats
from fatigue_guard.storage.records import FeedbackRecord, PredictionRecord
from fatigue_guard.storage.services import BlobErasureIncomplete, Erasure, ErasureCounts
from fatigue_guard.storage.sql.repository import PredictionNotFound
from fatigue_guard.storage.sql.schema import SchemaOutOfDate, check_schema_current, upgrade_database

__all__ = [
    "BatchResult",
    "BlobErasureIncomplete",
    "Erasure",
    "ErasureCounts",
    "FeedbackRecord",
    "PredictionNotFound",
    "PredictionRecord",
    "PredictionRecorder",
    "RecorderStats",
    "SchemaOutOfDate",
    "Storage",
    "build_storage",
    "check_schema_current",
    "upgrade_database",
]
