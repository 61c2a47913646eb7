"""The records the data plane stores: plain values, independent of any database or file format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
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


def prediction_to_json(record: PredictionRecord) -> dict[str, Any]:
    """A JSON-safe dict of ``record`` (outbox payloads, spool lines); inverse of
    :func:`prediction_from_json`."""
    return {
        "event_id": str(record.event_id),
        "user_id": record.user_id,
        "measured_at": record.measured_at.isoformat(),
        "received_at": record.received_at.isoformat(),
        "features": dict(record.features),
        "fatigue_probability": record.fatigue_probability,
        "alert": record.alert,
        "threshold": record.threshold,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "served_by": record.served_by,
        "features_version": record.features_version,
        "device_model": record.device_model,
        "platform": record.platform,
        "app_version": record.app_version,
    }


def prediction_from_json(data: dict[str, Any]) -> PredictionRecord:
    return PredictionRecord(
        event_id=UUID(data["event_id"]),
        user_id=data["user_id"],
        measured_at=datetime.fromisoformat(data["measured_at"]),
        received_at=datetime.fromisoformat(data["received_at"]),
        features=dict(data["features"]),
        fatigue_probability=float(data["fatigue_probability"]),
        alert=bool(data["alert"]),
        threshold=float(data["threshold"]),
        model_name=data["model_name"],
        model_version=data["model_version"],
        served_by=data["served_by"],
        features_version=int(data["features_version"]),
        device_model=data.get("device_model"),
        platform=data.get("platform"),
        app_version=data.get("app_version"),
    )
