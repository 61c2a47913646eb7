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
from fatigue_guard.storage.recording.recorder import is_db_unavailable
from fatigue_guard.storage.services import BlobErasureIncomplete

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _model_view(state: ServingState) -> dict[str, object] | None:
    model = state.models.current
    if model is None:
        return None
    return {
        "name": model.name,
        "version": model.version,
        "threshold": model.threshold,
        "alerting": model.alerting,
        "runtime": model.runtime,
        "loaded_at": model.loaded_at.isoformat(),
        "source": state.models.source,
        "sha256": model.sha256,
        "check": model.check,
    }


@router.post("/models/reload", summary="Load the production version now (no wait for the poll)")
async def reload_model(state: ServingState = Depends(get_state)) -> Response:
    """Same path as the poll (load beside, check, swap), and retries a refused version.

    Reaches only the process that receives it; the others follow at their next poll.
    """
    outcome = await run_in_threadpool(state.models.refresh, state.settings, force=True)
    state.metrics.observe_model(state.models, outcome)
    if outcome.outcome == "refused":
        raise Problem(
            409,
            f"Kept v{outcome.serving}: version {outcome.target} {outcome.reason}",
            kind="model-refused",
        )
    if outcome.outcome in ("unreachable", "no-model") and state.models.current is None:
        raise Problem(503, f"No model to serve: {outcome.reason}", kind="model-unavailable")
    return json_response(
        {
            "outcome": outcome.outcome,
            "previous": outcome.previous,
            "registry": "unreachable" if outcome.outcome == "unreachable" else "ok",
            "reason": outcome.reason,
            "model": _model_view(state),
        }
    )


@router.get("/status", summary="Served model, data-plane counters")
async def status(state: ServingState = Depends(get_state)) -> Response:
    stores = await run_in_threadpool(state.storage.ping) if state.storage else {}
    return json_response(
        {
            "model": _model_view(state),
            "model_last_error": state.models.last_error,
            "model_refused": state.models.recent_refusals(),
            "stores": stores,
            "recorder": asdict(state.recorder.stats()),
        }
    )


@router.delete("/users/{user_id}", summary="Erase every record of a user (SQL and blob store)")
async def erase_user(user_id: UserId, state: ServingState = Depends(get_state)) -> Response:
    """Only a complete erasure answers 200. Without SQL nothing can be erased or tombstoned, so
    that is a 503 that claims nothing; a blob store that fails half-way is a 503 too, retried
    safely (the tombstone already hides the user's rows from every reader)."""
    assert state.storage is not None
    try:
        erasure = await run_in_threadpool(state.storage.erase_user, user_id)
    except BlobErasureIncomplete as exc:
        raise Problem(
            503,
            "SQL rows erased and tombstoned at "
            f"{exc.tombstoned_at.isoformat()}, but the blob store could not be rewritten; "
            "erase again to finish.",
            headers={"Retry-After": "30"},
        ) from None
    except Exception as exc:
        if not is_db_unavailable(exc):
            raise
        raise Problem(
            503,
            "The SQL database cannot be reached; nothing was erased. Retry later.",
            headers={"Retry-After": "5"},
        ) from None
    # SQL no longer holds their history; this process's copy goes too.
    state.personal_baselines.forget(user_id)
    return json_response(
        {
            "user_id": user_id,
            "removed": asdict(erasure.counts),
            "tombstoned_at": erasure.tombstoned_at.isoformat(),
        }
    )
