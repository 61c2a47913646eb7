"""Turn validated prediction requests into answered, recordable predictions.

Shared by the single and batch endpoints so both score, threshold and record the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fatigue_guard.contract.alerting import ALERTING_ON, Alerting, decide_alert
from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.contract.schemas import PredictionRequest, utc
from fatigue_guard.serving.model_slot import LoadedModel
from fatigue_guard.storage.records import PredictionRecord


def feature_rows(requests: Sequence[PredictionRequest]) -> np.ndarray:
    return np.asarray([r.features.as_row() for r in requests], dtype="float32").reshape(
        len(requests), len(FEATURE_NAMES)
    )


def score_requests(
    requests: Sequence[PredictionRequest], model: LoadedModel
) -> list[PredictionRecord]:
    """Score every request with ``model`` in one call and build the records to store."""
    received_at = datetime.now(UTC)
    probabilities = model.score(feature_rows(requests))
    records = []
    for request, probability in zip(requests, probabilities, strict=True):
        client = request.client
        records.append(
            PredictionRecord(
                event_id=request.event_id,
                user_id=request.user_id,
                measured_at=utc(request.measured_at),
                received_at=received_at,
                features=request.features.model_dump(),
                fatigue_probability=float(probability),
                alert=decide_alert(float(probability), model.threshold, model.alerting),
                threshold=model.threshold,
                model_name=model.name,
                model_version=model.version,
                served_by="server",
                features_version=model.features_version,
                device_model=client.device_model if client else None,
                platform=client.platform if client else None,
                app_version=client.app_version if client else None,
            )
        )
    return records


def alerting_of(record: PredictionRecord, model: LoadedModel) -> Alerting:
    """The alerting mode of the version that answered ``record``.

    Records do not store it: a replayed answer of the serving version takes that version's
    mode; one of an earlier version is reported ``on`` (its stored ``alert`` is what it said).
    """
    return model.alerting if record.model_version == model.version else ALERTING_ON


def response_body(record: PredictionRecord, alerting: Alerting = ALERTING_ON) -> dict[str, Any]:
    """``PredictionResponse`` body of a stored prediction (first answer or idempotent replay)."""
    return {
        "event_id": str(record.event_id),
        "fatigue_probability": record.fatigue_probability,
        "alert": record.alert,
        "alerting": alerting,
        "threshold": record.threshold,
        "model": {"name": record.model_name, "version": record.model_version},
        "served_by": record.served_by,
    }
