"""``/dashboard``: the operator's page, and the JSON behind each of its charts.

* ``GET /dashboard`` the page (admin token or session cookie; a browser without either is sent
  to the sign-in form), ``GET /dashboard/login`` and ``POST /dashboard/session`` (the admin
  token in, a session cookie out), ``POST /dashboard/logout``;
* ``GET /dashboard/static/<name>`` the page's scripts, styles and chart library (no data in
  them, so no credentials: the sign-in form needs the styles too);
* ``GET /v1/admin/dashboard/<panel>.json`` one panel's data, for the page and for any other
  tool; ``GET /v1/admin/dashboard/reports/<id>.html`` a stored monitoring report.

Not in the OpenAPI document: the document lists the API clients call, and its table of
operations (serving/openapi.py) describes those. The dashboard's JSON is described in
docs/dashboard.md.

The router's lifespan starts the sampler that keeps this process's request metrics over time
(:mod:`fatigue_guard.serving.dashboard.sampler`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.concurrency import run_in_threadpool

from fatigue_guard.serving.dashboard import panels
from fatigue_guard.serving.dashboard.assets import asset, page
from fatigue_guard.serving.dashboard.sampler import MetricsHistory
from fatigue_guard.serving.dashboard.session import (
    Access,
    bearer_token,
    check_access,
    clear_session_cookie,
    configured_token,
    is_admin_token,
    issue_session,
    require_dashboard_access,
    set_session_cookie,
)
from fatigue_guard.serving.problems import Problem
from fatigue_guard.serving.routes.common import json_response
from fatigue_guard.serving.state import ServingState, get_state
from fatigue_guard.storage.sql.dashboard_queries import DashboardQueries

T = TypeVar("T")

# How often the sampler snapshots this process's metrics, and how many snapshots it keeps
# (three hours at 10 s). Module attributes so a test can sample faster before the app starts.
SAMPLE_INTERVAL_S = 10.0
SAMPLES_KEPT = 1080
# A page polls every panel together; several tabs or tools asking within this window share one
# computation (the traffic query reads a day of predictions).
CACHE_TTL_S = 5.0
MAX_HOURS = 168.0

# Everything the page loads comes from this server; the charts draw on canvases.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# A stored monitoring report is one self-contained file: inline styles, embedded PNGs, nothing
# to run.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it a browser sends "Origin: null" with the sign-in form, and the
    # session route could not tell its own page from a sandboxed frame elsewhere.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class TtlCache:
    """Values computed at most once per ``ttl_s`` per key, across threads."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._values: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, compute: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        value = compute()
        with self._lock:
            self._values[key] = (time.monotonic(), value)
            if len(self._values) > 64:  # bounded: keys carry the hours parameter
                oldest = min(self._values, key=lambda k: self._values[k][0])
                del self._values[oldest]
        return value


@dataclass
class DashboardRuntime:
    history: MetricsHistory | None
    cache: TtlCache = field(default_factory=lambda: TtlCache(CACHE_TTL_S))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServingState = app.state.serving
    history = MetricsHistory(
        state.metrics.registry, interval_s=SAMPLE_INTERVAL_S, keep=SAMPLES_KEPT
    )
    history.start()
    app.state.dashboard = DashboardRuntime(history)
    try:
        yield
    finally:
        history.stop()


router = APIRouter(tags=["dashboard"], include_in_schema=False, lifespan=_lifespan)


def _runtime(request: Request) -> DashboardRuntime:
    runtime = getattr(request.app.state, "dashboard", None)
    if runtime is None:  # the app was built without running its lifespan
        runtime = request.app.state.dashboard = DashboardRuntime(None)
    return runtime


def _context(request: Request, state: ServingState) -> panels.Context:
    if state.storage is None:
        raise Problem(503, "The data plane is not started yet.", headers={"Retry-After": "2"})
    runtime = _runtime(request)
    storage = state.storage
    return panels.Context(
        settings=state.settings,
        storage=storage,
        models=state.models,
        history=runtime.history,
        now=datetime.now(UTC),
        cached=runtime.cache.get,
        recorder_stats=lambda: storage.recorder.stats(),
    )


async def _panel(build: Callable[[], dict[str, Any]]) -> Response:
    try:
        body = await run_in_threadpool(build)
    except sa_exc.SQLAlchemyError:
        raise Problem(
            503,
            "The SQL database cannot be reached; this panel reads it.",
            headers={"Retry-After": "5"},
        ) from None
    response = json_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- the page and the session -----------------------------------------------------------------


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _html(body: str, status: int = 200, **headers: str) -> Response:
    return Response(
        body,
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={**_PAGE_HEADERS, "Content-Security-Policy": PAGE_CSP, **headers},
    )


def _login_page(message: str = "", status: int = 200) -> Response:
    body = page("login.html").replace("{{message}}", escape(message))
    body = body.replace("{{message_hidden}}", "" if message else "hidden")
    return _html(body, status)


@router.get("/dashboard")
async def dashboard_page(request: Request, state: ServingState = Depends(get_state)) -> Response:
    try:
        check_access(request, state)
    except Problem as problem:
        # A browser without credentials goes to the sign-in form; API clients get the problem.
        if problem.status == 401 and _wants_html(request):
            expired = "?expired=1" if "expired" in problem.detail else ""
            return RedirectResponse(f"/dashboard/login{expired}", status_code=303)
        raise
    return _html(page("dashboard.html"))


@router.get("/dashboard/login")
async def login_form(request: Request, state: ServingState = Depends(get_state)) -> Response:
    configured_token(state)  # 404 without a configured token
    expired = request.query_params.get("expired") == "1"
    return _login_page("Your session has ended; sign in again." if expired else "")


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.scheme == request.url.scheme and parts.netloc == request.headers.get("host")


@router.post("/dashboard/session")
async def create_session(request: Request, state: ServingState = Depends(get_state)) -> Response:
    """Exchange the admin token (form field ``token``, or ``Authorization: Bearer``) for a
    session cookie. A form post is answered with a redirect to the page."""
    configured = configured_token(state)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form = content_type == "application/x-www-form-urlencoded"
    if not _same_origin(request):
        raise Problem(403, "Sign-in must come from this server's own page.", kind="forbidden")
    presented = bearer_token(request)
    if form:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        presented = (fields.get("token") or [""])[0].strip() or presented
    if not presented:
        if form:
            return _login_page("Enter the admin token.", 401)
        raise Problem(
            401,
            "Send the admin token (form field `token` or Authorization: Bearer).",
            kind="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not is_admin_token(presented, configured):
        if form:
            return _login_page("That is not the admin token.", 403)
        raise Problem(403, "Not an admin token.", kind="forbidden")
    value, expires = issue_session(configured)
    expires_at = datetime.fromtimestamp(expires, UTC).isoformat()
    response: Response
    if form:
        response = RedirectResponse("/dashboard", status_code=303)
    else:
        response = json_response({"expires_at": expires_at})
    response.headers["Cache-Control"] = "no-store"
    set_session_cookie(response, request, value)
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/dashboard/login", status_code=303)
    clear_session_cookie(response, request)
    return response


@router.get("/dashboard/static/{name:path}")
async def static_file(name: str, request: Request) -> Response:
    found = asset(name)
    if found is None:
        raise Problem(404, "No such dashboard file.")
    headers = {"ETag": found.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


# -- the JSON panels --------------------------------------------------------------------------


@router.get("/v1/admin/dashboard/{panel}.json")
async def panel_json(
    panel: str,
    request: Request,
    hours: float = Query(24.0, gt=0, le=MAX_HOURS),
    access: Access = Depends(require_dashboard_access),
    state: ServingState = Depends(get_state),
) -> Response:
    builders: dict[str, Callable[[panels.Context], dict[str, Any]]] = {
        "serving": panels.serving_panel,
        "process": panels.process_panel,
        "traffic": lambda ctx: panels.traffic_panel(ctx, hours),
        "performance": panels.performance_panel,
        "drift": panels.drift_panel,
        "retraining": panels.retraining_panel,
        "pipeline": lambda ctx: panels.pipeline_panel(ctx, hours),
    }
    build = builders.get(panel)
    if build is None:
        raise Problem(404, f"No dashboard panel {panel!r}; panels: {', '.join(panels.PANELS)}.")
    ctx = _context(request, state)
    return await _panel(lambda: build(ctx))


class _BlobUnavailable(RuntimeError):
    pass


@router.get("/v1/admin/dashboard/reports/{report_id}.html")
async def report_html(
    report_id: int,
    access: Access = Depends(require_dashboard_access),
    state: ServingState = Depends(get_state),
) -> Response:
    storage = state.storage
    if storage is None:
        raise Problem(503, "The data plane is not started yet.", headers={"Retry-After": "2"})

    def load() -> bytes | None:
        from fatigue_guard.storage.blob.stores import BlobNotFound

        with storage.uow_factory() as uow:
            row = DashboardQueries(uow.session).drift_report(report_id)
            key = row.html_key if row is not None else None
        if key is None:
            return None
        try:
            return storage.blobs.get(key)
        except BlobNotFound:
            return None
        except Exception as exc:  # the blob store is down: the report is there, unreachable
            raise _BlobUnavailable(str(exc)) from exc

    try:
        body = await run_in_threadpool(load)
    except _BlobUnavailable:
        raise Problem(
            503,
            "The blob store holding the report cannot be reached.",
            headers={"Retry-After": "5"},
        ) from None
    except sa_exc.SQLAlchemyError:
        raise Problem(
            503, "The SQL database cannot be reached.", headers={"Retry-After": "5"}
        ) from None
    if body is None:
        raise Problem(404, f"No stored HTML for monitoring report {report_id}.")
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={**_PAGE_HEADERS, "Content-Security-Policy": REPORT_CSP},
    )
