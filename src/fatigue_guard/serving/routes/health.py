"""Liveness and readiness probes (DESIGN §3)."""

from __future__ import annotations

import os

import orjson
from fastapi import APIRouter, Depends
from fastapi.responses import Response

from fatigue_guard.serving.state import ServingState, get_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Response:
    """The process is up. Says nothing about the model or the stores."""
    return Response(orjson.dumps({"status": "ok"}), media_type="application/json")


@router.get("/readyz")
async def readyz(state: ServingState = Depends(get_state)) -> Response:
    """Ready when a model is loaded and the stores answer; details say what is missing."""
    slot = state.models
    model = slot.current
    checks: dict[str, object] = {
        "model": {
            "ok": model is not None,
            "name": model.name if model else None,
            "version": model.version if model else None,
            "runtime": model.runtime if model else None,
            # "cache": started from the local copy because the registry gave no servable model.
            "source": slot.source,
            "source_detail": slot.source_detail,
            "sha256": model.sha256 if model else None,
            "loaded_at": model.loaded_at.isoformat() if model else None,
            "check": model.check if model else None,
            "last_error": slot.last_error,
            "refused": slot.recent_refusals(),
            "pid": os.getpid(),
        }
    }
    health = getattr(state.recorder, "health", None)
    if health is not None:
        checks["stores"] = health()
    else:
        checks["stores"] = {"ok": state.recorder is not None}
    ready = all(bool(c.get("ok")) for c in checks.values() if isinstance(c, dict))
    body = {"status": "ready" if ready else "not-ready", "checks": checks}
    return Response(
        orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
    )
