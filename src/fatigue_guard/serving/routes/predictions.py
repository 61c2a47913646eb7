"""``POST /v1/predictions`` and ``POST /v1/predictions:batch``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from fatigue_guard.contract.errors import validation_errors
from fatigue_guard.contract.schemas import (
    BatchPredictionRequest,
    PredictionRequest,
    PredictionResponse,
)
from fatigue_guard.serving.auth import Principal, charge_items, device_principal, ensure_own_user
from fatigue_guard.serving.model_slot import LoadedModel
from fatigue_guard.serving.problems import Problem
from fatigue_guard.serving.routes.common import json_body_schema, json_response, parse_body
from fatigue_guard.serving.scoring import alerting_of, response_body, score_requests
from fatigue_guard.serving.state import ServingState, get_state
from fatigue_guard.storage.records import PredictionRecord

router = APIRouter(prefix="/v1", tags=["predictions"])

_CONFLICT = [{"field": "event_id", "message": "already used by another event"}]


def _serving_model(state: ServingState) -> LoadedModel:
    model = state.models.current
    if model is None:
        raise Problem(503, "No model is loaded yet; see /readyz.", kind="model-unavailable")
    return model


def _count(state: ServingState, records: list[PredictionRecord]) -> None:
    for record in records:
        state.metrics.predictions.labels(record.model_version, record.served_by).inc()
        if record.alert:
            state.metrics.alerts.labels(record.model_version).inc()


@router.post(
    "/predictions",
    openapi_extra=json_body_schema(PredictionRequest),
    response_model=PredictionResponse,
    summary="Score one feature vector",
)
async def create_prediction(request: Request) -> Response:
    """Score, record durably, answer. Re-sending an ``event_id`` returns the stored answer.

    The hot path resolves state and caller itself instead of through ``Depends``: FastAPI runs
    a plain-``def`` dependency (``get_state``) in the thread pool, a thread hop per request
    that cost more than scoring. The checks are the same ``device_principal`` runs.
    """
    state: ServingState = request.app.state.serving
    principal = await device_principal(request, state)
    payload = await parse_body(request, PredictionRequest, state)
    ensure_own_user(principal, payload.user_id)
    model = _serving_model(state)
    # Baselines the device left out are computed from the person's history (used as scored).
    filled = await state.personal_baselines.fill([payload])
    records = score_requests([filled[0].request], model)
    # Awaits the shared group commit: the answer leaves only once its record is durable.
    stored = (
        await state.recorder.record_async(records[0])
        if state.settings.record_predictions
        else records[0]  # benchmark knob: measure the cost of logging (never in production)
    )
    if stored.user_id != payload.user_id:
        raise Problem(409, "event_id is already used by another event.", kind="event-id-conflict")
    if state.settings.record_predictions:
        state.personal_baselines.remember(filled)
    _count(state, records)
    return json_response(response_body(stored, alerting_of(stored, model)))


@router.post(
    "/predictions:batch",
    openapi_extra=json_body_schema(BatchPredictionRequest),
    summary="Score up to 1000 feature vectors, with per-item results and errors",
)
async def create_predictions_batch(
    request: Request,
    state: ServingState = Depends(get_state),
    principal: Principal = Depends(device_principal),
) -> Response:
    batch = await parse_body(request, BatchPredictionRequest, state)
    # A batch is scored item by item: it costs the key what as many single requests would.
    charge_items(state, principal, len(batch.items))
    model = _serving_model(state)
    results: list[dict[str, Any]] = [{} for _ in batch.items]
    valid: list[tuple[int, PredictionRequest]] = []
    for index, item in enumerate(batch.items):
        try:
            parsed = PredictionRequest.model_validate(item)
        except ValidationError as exc:
            results[index] = {"index": index, "status": 422, "errors": validation_errors(exc)}
            continue
        if parsed.user_id != principal.user_id:
            results[index] = {
                "index": index,
                "status": 403,
                "errors": [{"field": "user_id", "message": "this key may not write that user"}],
            }
            continue
        valid.append((index, parsed))
    if valid:
        filled = await state.personal_baselines.fill([p for _, p in valid])
        records = score_requests([f.request for f in filled], model)
        stored = (
            await run_in_threadpool(_record_each, state, records)
            if state.settings.record_predictions
            else records  # benchmark knob, as in create_prediction
        )
        _count(state, records)
        for (index, payload), saved in zip(valid, stored, strict=True):
            if saved.user_id != payload.user_id:
                results[index] = {"index": index, "status": 409, "errors": _CONFLICT}
            else:
                results[index] = {
                    "index": index,
                    "status": 200,
                    "result": response_body(saved, alerting_of(saved, model)),
                }
        if state.settings.record_predictions:
            state.personal_baselines.remember(
                [
                    f
                    for f, saved in zip(filled, stored, strict=True)
                    if saved.user_id == f.request.user_id
                ]
            )
    failed = sum(1 for r in results if r["status"] != 200)
    return json_response({"items": results, "succeeded": len(results) - failed, "failed": failed})


def _record_each(state: ServingState, records: list[PredictionRecord]) -> list[PredictionRecord]:
    # One transaction for the new ones; a replayed event_id gets its first stored answer back.
    result = state.recorder.record_many(records)
    if not result.duplicates:
        return records
    duplicates = set(result.duplicates)
    return [state.recorder.get(r.event_id) or r if r.event_id in duplicates else r for r in records]
