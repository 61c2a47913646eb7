"""``POST /v1/feedback``: ground truth for a prediction."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import exc as sa_exc
from starlette.concurrency import run_in_threadpool

from fatigue_guard.contract.schemas import FeedbackRequest, utc
from fatigue_guard.serving.auth import Principal, device_principal
from fatigue_guard.serving.problems import Problem
from fatigue_guard.serving.routes.common import json_body_schema, json_response, parse_body
from fatigue_guard.serving.state import ServingState, get_state
from fatigue_guard.storage.records import FeedbackRecord
from fatigue_guard.storage.sql.repository import PredictionNotFound

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post(
    "/feedback",
    openapi_extra=json_body_schema(FeedbackRequest),
    summary="Report whether a fatigue event happened for a prediction",
)
async def create_feedback(
    request: Request,
    state: ServingState = Depends(get_state),
    principal: Principal = Depends(device_principal),
) -> Response:
    """201 for a new report, 200 with the first report for a repeat (idempotent on event_id)."""
    payload = await parse_body(request, FeedbackRequest, state)
    assert state.storage is not None
    record = FeedbackRecord(
        event_id=payload.event_id,
        user_id=principal.user_id,
        fatigue_event=payload.fatigue_event,
        source=payload.source,
        observed_at=utc(payload.observed_at),
        received_at=datetime.now(UTC),
    )
    try:
        stored, created = await run_in_threadpool(state.storage.record_feedback, record)
    except PredictionNotFound:
        # Same answer for "no such event" and "someone else's event".
        raise Problem(
            404, "No prediction with this event_id for this user.", kind="prediction-not-found"
        ) from None
    except sa_exc.OperationalError:
        raise Problem(
            503, "Feedback store unavailable; retry later.", headers={"Retry-After": "5"}
        ) from None
    if created:
        await state.personal_baselines.label(
            principal.user_id, stored.event_id, stored.fatigue_event
        )
    body = {
        "event_id": str(stored.event_id),
        "fatigue_event": stored.fatigue_event,
        "source": stored.source,
        "observed_at": stored.observed_at.isoformat(),
        "created": created,
    }
    return json_response(body, status=201 if created else 200)
