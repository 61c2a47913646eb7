"""Liveness and readiness probes.

Probes (a load balancer, Kubernetes, Azure ML) need the status code only, and anyone who can
reach the port can call them: without credentials they say whether each check passed, nothing
more. The details an operator needs (model version and checksum, why a version was refused,
the last load error, which worker process answered) come with the admin token.
"""

from __future__ import annotations

import hmac
import os

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fatigue_guard.serving.state import ServingState, get_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Response:
    """The process is up. Says nothing about the model or the stores."""
    return Response(orjson.dumps({"status": "ok"}), media_type="application/json")


def _is_admin(request: Request, state: ServingState) -> bool:
    """Whether the request carries the configured admin token.

    Anything else (no header, a device key, a wrong token) gets the anonymous answer, not a
    401: a probe that sends a stale header must still read the status.
    """
    configured = state.settings.admin_token
    header = request.headers.get("authorization", "")
    if configured is None or header[:7].lower() != "bearer ":
        return False
    token = header[7:].strip()
    return bool(token) and hmac.compare_digest(
        token.encode(), configured.get_secret_value().encode()
    )


def _model_check(state: ServingState) -> dict[str, object]:
    slot = state.models
    model = slot.current
    return {
        "ok": model is not None,
        "name": model.name if model else None,
        "version": model.version if model else None,
        "runtime": model.runtime if model else None,
        # "advisory": the version could not meet the precision floor; it never alerts.
        "alerting": model.alerting if model else None,
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


def _registry_check(state: ServingState) -> dict[str, object]:
    """Whether the last look at the model registry got a full answer, and if not, why."""
    slot = state.models
    since = slot.registry_down_since
    return {
        "ok": slot.registry_reachable is not False,
        "error": slot.registry_error,
        "down_since": since.isoformat() if since else None,
    }


def _recording_check(state: ServingState) -> dict[str, object]:
    stats = state.recorder.stats()
    return {
        "ok": True,
        "sql_available": stats.db_available,
        "spool_pending": stats.spool_pending,
        "outbox_backlog": stats.outbox_backlog,
    }


@router.get("/readyz")
async def readyz(request: Request, state: ServingState = Depends(get_state)) -> Response:
    """Ready when a model is loaded and no stop signal came; the admin token adds the details.

    The stores do not decide readiness: with the SQL database down, answers are recorded in the
    local spool, and with the blob store down, features wait in the outbox. Taking a replica
    out of the load balancer then would turn an outage we absorb into failed requests. The
    recording check says what is absorbing what. Nor does the model registry: while it is down
    the loaded model keeps serving; the registry check (admin view only) says since when and why.
    """
    checks: dict[str, dict[str, object]] = {
        "model": _model_check(state),
        "recording": _recording_check(state),
    }
    # From the stop signal on, the process still answers but is going away: a load balancer
    # must stop sending before it closes its port.
    ready = not state.shutdown.draining and all(bool(c.get("ok")) for c in checks.values())
    if _is_admin(request, state):
        checks["registry"] = _registry_check(state)
    else:
        checks = {name: {"ok": bool(c.get("ok"))} for name, c in checks.items()}
    body = {"status": "ready" if ready else "not-ready", "checks": checks}
    return Response(
        orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
    )
