"""``POST /v1/sync``: predictions made on the device while offline (DESIGN §3).

Each event is validated on its own; the good ones are stored (``served_by="edge"``), the bad
ones are named by index and field, and replays are counted as duplicates, never stored twice.
An event_id already stored for another user is a conflict, named by index like a rejection:
``/v1/predictions`` answers 409 for it, and a device that took it for a duplicate would delete
an event the server never stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from fatigue_guard.contract.errors import validation_errors
from fatigue_guard.contract.features import FEATURES_VERSION
from fatigue_guard.contract.schemas import SyncEvent, SyncRequest, utc
from fatigue_guard.serving.auth import Principal, device_principal
from fatigue_guard.serving.routes.common import json_body_schema, json_response, parse_body
from fatigue_guard.serving.state import ServingState, get_state
from fatigue_guard.storage.records import PredictionRecord

router = APIRouter(prefix="/v1", tags=["sync"])

_CONFLICT = [{"field": "event_id", "message": "already used by another event"}]


def _edge_record(event: SyncEvent, threshold: float, model_name: str) -> PredictionRecord:
    client = event.client
    return PredictionRecord(
        event_id=event.event_id,
        user_id=event.user_id,
        measured_at=utc(event.measured_at),
        received_at=datetime.now(UTC),
        features=event.features.model_dump(),
        fatigue_probability=float(event.prediction.fatigue_probability),
        alert=event.prediction.alert,
        threshold=threshold,
        model_name=model_name,
        model_version=event.prediction.model_version,
        served_by="edge",
        features_version=FEATURES_VERSION,
        device_model=client.device_model if client else None,
        platform=client.platform if client else None,
        app_version=client.app_version if client else None,
    )


@router.post(
    "/sync",
    openapi_extra=json_body_schema(SyncRequest),
    summary="Upload predictions the device made offline",
)
async def sync_events(
    request: Request,
    state: ServingState = Depends(get_state),
    principal: Principal = Depends(device_principal),
) -> Response:
    batch = await parse_body(request, SyncRequest, state)
    rejected: list[dict[str, Any]] = []
    records: list[PredictionRecord] = []
    indices: list[int] = []
    for index, item in enumerate(batch.events):
        try:
            event = SyncEvent.model_validate(item)
        except ValidationError as exc:
            rejected.append({"index": index, "errors": validation_errors(exc)})
            continue
        if event.user_id != principal.user_id:
            errors = [{"field": "user_id", "message": "this key may not write that user"}]
            rejected.append({"index": index, "errors": errors})
            continue
        threshold = await run_in_threadpool(
            state.edge_thresholds.threshold_for,
            event.prediction.model_version,
            state.storage.blobs if state.storage else None,
        )
        if threshold is None:
            errors = [{"field": "prediction.model_version", "message": "unknown model version"}]
            rejected.append({"index": index, "errors": errors})
            continue
        records.append(_edge_record(event, threshold, state.settings.registered_model_name))
        indices.append(index)
    accepted = duplicates = 0
    conflicts: list[dict[str, Any]] = []
    if records:
        accepted, not_new, taken = await run_in_threadpool(
            _record, state, records, principal.user_id
        )
        for index, record in zip(indices, records, strict=True):
            if record.event_id in taken:
                conflicts.append({"index": index, "errors": _CONFLICT})
            else:
                state.metrics.predictions.labels(record.model_version, "edge").inc()
        duplicates = not_new - len(conflicts)
    return json_response(
        {
            "accepted": accepted,
            "duplicates": duplicates,
            "conflicts": conflicts,
            "rejected": rejected,
        }
    )


def _record(
    state: ServingState, records: list[PredictionRecord], user_id: str
) -> tuple[int, int, set[UUID]]:
    """How many were new, how many were not, and which event_ids another user holds."""
    result = state.recorder.record_many(records)
    # The recorder counts every event_id it already had as a duplicate; only the stored
    # owner tells a replay of ours from someone else's event. Replays are rare, so one
    # lookup each is cheap.
    taken: set[UUID] = set()
    for event_id in set(result.duplicates):
        stored = state.recorder.get(event_id)
        if stored is not None and stored.user_id != user_id:
            taken.add(event_id)
    return len(result.accepted), len(result.duplicates), taken
