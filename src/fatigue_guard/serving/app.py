"""The FastAPI application factory.

``create_app(settings)`` wires settings, the model slot and the data plane into one app; tests
build apps with their own settings (a temporary HOME, a PostgreSQL URL, an Azurite connection
string) exactly the way ``fatigue-guard serve`` does, so what is tested is what runs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fatigue_guard import __version__
from fatigue_guard.config import Settings, get_settings
from fatigue_guard.serving.metrics import ApiMetrics
from fatigue_guard.serving.middleware import RequestContextMiddleware
from fatigue_guard.serving.model_slot import NoServableModel
from fatigue_guard.serving.problems import install_problem_handlers
from fatigue_guard.serving.routes import health, observability, predictions
from fatigue_guard.serving.state import ServingState

log = logging.getLogger(__name__)


def _load_model(state: ServingState) -> None:
    try:
        state.models.load(state.settings)
    except NoServableModel as exc:
        # Start anyway: /healthz answers, /readyz says why it is not ready, predictions get 503.
        log.warning("%s", exc)
    except Exception as exc:  # a broken registry must not stop the process from starting
        log.error("could not load the production model: %s", type(exc).__name__)


def create_app(settings: Settings | None = None, *, recorder: object | None = None) -> FastAPI:
    """Build the API. ``recorder`` replaces the data plane built from ``settings`` (tests)."""
    settings = settings or get_settings()
    state = ServingState(settings=settings, recorder=recorder, metrics=ApiMetrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from fatigue_guard.storage.factory import build_recorder

        owns_recorder = state.recorder is None
        if owns_recorder:
            # Refuses to start on an unmigrated or older schema, naming the command that fixes it.
            state.recorder = build_recorder(settings)
        state.recorder.start()
        _load_model(state)
        try:
            yield
        finally:
            if owns_recorder:
                state.recorder.stop()

    app = FastAPI(
        title="fatigue-guard",
        version=__version__,
        summary="Fatigue-event predictions from wearable sleep and heart-rate features.",
        lifespan=lifespan,
    )
    app.state.serving = state
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(observability.router)
    app.include_router(predictions.router)
    app.add_middleware(
        RequestContextMiddleware, metrics=state.metrics, max_body_bytes=settings.max_body_bytes
    )
    return app
