"""``/v1/admin``: operator routes, behind the admin token (never a device key)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fatigue_guard.contract.schemas import UserId
from fatigue_guard.serving.auth import require_admin
from fatigue_guard.serving.problems import Problem
from fatigue_guard.serving.routes.common import json_response
from fatigue_guard.serving.state import ServingState, get_state

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _model_view(state: ServingState) -> dict[str, object] | None:
    model = state.models.current
    if model is None:
        return None
    return {
        "name": model.name,
        "version": model.version,
        "threshold": model.threshold,
        "runtime": model.runtime,
        "loaded_at": model.loaded_at.isoformat(),
    }


@router.post("/models/reload", summary="Load the production version now (no wait for the poll)")
async def reload_model(state: ServingState = Depends(get_state)) -> Response:
    before = state.models.current
    try:
        await run_in_threadpool(state.models.load, state.settings)
    except Exception as exc:
        state.metrics.model_loads.labels("refused").inc()
        raise Problem(
            409, f"Kept the current model: {type(exc).__name__}: {exc}", kind="model-refused"
        ) from None
    state.metrics.model_loads.labels("loaded").inc()
    return json_response(
        {"previous": before.version if before else None, "model": _model_view(state)}
    )


@router.get("/status", summary="Served model, data-plane counters")
async def status(state: ServingState = Depends(get_state)) -> Response:
    stores = await run_in_threadpool(state.storage.ping) if state.storage else {}
    return json_response(
        {
            "model": _model_view(state),
            "model_last_error": state.models.last_error,
            "stores": stores,
            "recorder": asdict(state.recorder.stats()),
        }
    )


@router.delete("/users/{user_id}", summary="Erase every record of a user (SQL and blob store)")
async def erase_user(user_id: UserId, state: ServingState = Depends(get_state)) -> Response:
    assert state.storage is not None
    counts = await run_in_threadpool(state.storage.erase_user, user_id)
    return json_response({"user_id": user_id, "removed": asdict(counts)})
