"""``POST /v1/sync``: predictions made on the device while offline.

Each event is validated on its own; the good ones are stored (``served_by="edge"``), the bad
ones are named by index and field, and replays are counted as duplicates, never stored twice.
An event_id already stored for another user is a conflict, named by index like a rejection:
``/v1/predictions`` answers 409 for it, and a device that took it for a duplicate would delete
an event the server never stored.

What one sync may cost is bounded: the key is charged a token per event, and at most
``MAX_VERSION_LOOKUPS_PER_REQUEST`` model versions the server has not seen lately are looked up
(a blob-store read and a registry round trip each). The versions carrying the most events go
first; events of versions beyond the bound are rejected as not checked, and the device sends
them again with its next sync, when fewer versions are new.
"""

from __future__ import annotations

from collections import Counter
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
from fatigue_guard.serving.auth import Principal, charge_items, device_principal
from fatigue_guard.serving.routes.common import json_body_schema, json_response, parse_body
from fatigue_guard.serving.state import ServingState, get_state
from fatigue_guard.storage.records import PredictionRecord

router = APIRouter(prefix="/v1", tags=["sync"])

# A phone's queue holds events of the one or two edge versions it ran while offline.
MAX_VERSION_LOOKUPS_PER_REQUEST = 4

_CONFLICT = [{"field": "event_id", "message": "already used by another event"}]
_USER = [{"field": "user_id", "message": "this key may not write that user"}]
_UNKNOWN_VERSION = [{"field": "prediction.model_version", "message": "unknown model version"}]
_UNCHECKED_VERSION = [
    {
        "field": "prediction.model_version",
        "message": "not checked: too many unfamiliar model versions in one request; send again",
    }
]


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
    charge_items(state, principal, len(batch.events))
    rejected: list[dict[str, Any]] = []
    valid: list[tuple[int, SyncEvent]] = []
    for index, item in enumerate(batch.events):
        try:
            event = SyncEvent.model_validate(item)
        except ValidationError as exc:
            rejected.append({"index": index, "errors": validation_errors(exc)})
            continue
        if event.user_id != principal.user_id:
            rejected.append({"index": index, "errors": _USER})
            continue
        valid.append((index, event))
    thresholds = await _thresholds(state, [event.prediction.model_version for _, event in valid])
    records: list[PredictionRecord] = []
    indices: list[int] = []
    for index, event in valid:
        version = event.prediction.model_version
        if version not in thresholds:
            rejected.append({"index": index, "errors": _UNCHECKED_VERSION})
            continue
        threshold = thresholds[version]
        if threshold is None:
            rejected.append({"index": index, "errors": _UNKNOWN_VERSION})
            continue
        records.append(_edge_record(event, threshold, state.settings.registered_model_name))
        indices.append(index)
    rejected.sort(key=lambda r: r["index"])
    accepted = duplicates = 0
    conflicts: list[dict[str, Any]] = []
    pending: list[int] = []
    if records:
        outcome = await run_in_threadpool(_record, state, records, principal.user_id)
        if outcome is None:
            # Spooled while the SQL database is down: stored, but whether each event is new, a
            # replay or another user's cannot be known yet. Saying "accepted" would let the
            # phone delete an event the replay may drop as someone else's; "pending" keeps it
            # on the phone until a later sync gets the real answer (a replay of ours is then a
            # duplicate).
            pending = indices
        else:
            accepted, not_new, taken = outcome
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
            "accepted_pending": len(pending),
            "pending": pending,
            "conflicts": conflicts,
            "rejected": rejected,
        }
    )


async def _thresholds(state: ServingState, versions: list[str]) -> dict[str, float | None]:
    """The threshold (``None``: unknown) of each version that is known, remembered as unknown,
    or among the ``MAX_VERSION_LOOKUPS_PER_REQUEST`` looked up now; the others are left out."""
    resolved: dict[str, float | None] = {}
    to_look_up: list[str] = []
    for version, _ in Counter(versions).most_common():
        answered, threshold = state.edge_thresholds.cached(version)
        if answered:
            resolved[version] = threshold
        elif len(to_look_up) < MAX_VERSION_LOOKUPS_PER_REQUEST:
            to_look_up.append(version)
    if to_look_up:
        blobs = state.storage.blobs if state.storage else None
        resolved.update(await run_in_threadpool(state.edge_thresholds.look_up, to_look_up, blobs))
    return resolved


def _record(
    state: ServingState, records: list[PredictionRecord], user_id: str
) -> tuple[int, int, set[UUID]] | None:
    """How many were new, how many were not, and which event_ids another user holds; ``None``
    when the records went to the spool and none of that can be known yet."""
    result = state.recorder.record_many(records)
    if result.spooled:
        return None
    # The recorder counts every event_id it already had as a duplicate; only the stored
    # owner tells a replay of ours from someone else's event. Replays are rare, so one
    # lookup each is cheap.
    taken: set[UUID] = set()
    for event_id in set(result.duplicates):
        stored = state.recorder.get(event_id)
        if stored is not None and stored.user_id != user_id:
            taken.add(event_id)
    return len(result.accepted), len(result.duplicates), taken
