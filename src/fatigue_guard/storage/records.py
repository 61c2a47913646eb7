"""The records the data plane stores: plain values, independent of any database or file format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

from fatigue_guard.contract.features import FEATURES_VERSION

ServedBy = Literal["server", "edge"]


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """An answered prediction: metadata for SQL, features for the blob feature store.

    ``measured_at`` and ``received_at`` are timezone-aware UTC. ``features`` maps every contract
    feature name to its value or ``None``.
    """

    event_id: UUID
    user_id: str
    measured_at: datetime
    received_at: datetime
    features: dict[str, float | None]
    fatigue_probability: float
    alert: bool
    threshold: float
    model_name: str
    model_version: str
    served_by: ServedBy = "server"
    features_version: int = FEATURES_VERSION
    device_model: str | None = None
    platform: str | None = None
    app_version: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    event_id: UUID
    user_id: str
    fatigue_event: bool
    source: str
    observed_at: datetime
    received_at: datetime = field(compare=False, default=None)  # type: ignore[assignment]
