"""``POST /v1/predictions`` and ``POST /v1/predictions:batch`` (DESIGN §3)."""

from __future__ import annotations

from typing import Any

import orjson
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
from fatigue_guard.serving.model_slot import LoadedModel
from fatigue_guard.serving.problems import Problem, contract_violation
from fatigue_guard.serving.scoring import response_body, score_requests
from fatigue_guard.serving.state import ServingState, get_state
from fatigue_guard.storage.records import PredictionRecord

router = APIRouter(prefix="/v1", tags=["predictions"])


def _json_body_schema(model: type) -> dict[str, Any]:
    # Bodies are parsed by Pydantic's JSON parser directly (one pass, no dict detour), so the
    # schema is attached to the OpenAPI document by hand.
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def _serving_model(state: ServingState) -> LoadedModel:
    model = state.models.current
    if model is None:
        raise Problem(503, "No model is loaded yet; see /readyz.", kind="model-unavailable")
    return model


def _same_event(stored: PredictionRecord, request: PredictionRequest) -> None:
    if stored.user_id != request.user_id:
        raise Problem(409, "event_id is already used by another event.", kind="event-id-conflict")


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.post(
    "/predictions",
    openapi_extra=_json_body_schema(PredictionRequest),
    response_model=PredictionResponse,
    summary="Score one feature vector",
)
async def create_prediction(request: Request, state: ServingState = Depends(get_state)) -> Response:
    """Score, record durably, answer. Re-sending an ``event_id`` returns the stored answer."""
    try:
        payload = PredictionRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise contract_violation(validation_errors(exc)) from None
    model = _serving_model(state)
    (record,) = score_requests([payload], model)
    stored = await run_in_threadpool(state.recorder.record, record)
    _same_event(stored, payload)
    return json_response(response_body(stored))


@router.post(
    "/predictions:batch",
    openapi_extra=_json_body_schema(BatchPredictionRequest),
    summary="Score up to 1000 feature vectors, with per-item results and errors",
)
async def create_predictions_batch(
    request: Request, state: ServingState = Depends(get_state)
) -> Response:
    try:
        batch = BatchPredictionRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise contract_violation(validation_errors(exc)) from None
    model = _serving_model(state)
    results: list[dict[str, Any] | None] = [None] * len(batch.items)
    valid: list[tuple[int, PredictionRequest]] = []
    for index, item in enumerate(batch.items):
        try:
            valid.append((index, PredictionRequest.model_validate(item)))
        except ValidationError as exc:
            results[index] = {"index": index, "status": 422, "errors": validation_errors(exc)}
    if valid:
        records = score_requests([p for _, p in valid], model)
        stored = await run_in_threadpool(_record_all, state, records)
        for (index, payload), saved in zip(valid, stored, strict=True):
            if saved.user_id != payload.user_id:
                results[index] = {
                    "index": index,
                    "status": 409,
                    "errors": [{"field": "event_id", "message": "already used by another event"}],
                }
            else:
                results[index] = {"index": index, "status": 200, "result": response_body(saved)}
    failed = sum(1 for r in results if r and r["status"] != 200)
    return json_response({"items": results, "succeeded": len(results) - failed, "failed": failed})


def _record_all(state: ServingState, records: list[PredictionRecord]) -> list[PredictionRecord]:
    record_many = getattr(state.recorder, "record_many", None)
    if record_many is not None:
        return list(record_many(records))
    return [state.recorder.record(r) for r in records]
