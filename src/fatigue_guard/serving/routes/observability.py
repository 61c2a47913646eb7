"""``GET /metrics`` in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fatigue_guard.serving.state import ServingState, get_state

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics(state: ServingState = Depends(get_state)) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
