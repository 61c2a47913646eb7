"""The FastAPI application factory.

``create_app(settings)`` wires settings, the model slot and the data plane into one app; tests
build apps with their own settings (a temporary HOME, a PostgreSQL URL, an Azurite connection
string) exactly the way ``fatigue-guard serve`` does, so what is tested is what runs.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from sqlalchemy import exc as sa_exc
from starlette.concurrency import run_in_threadpool

from fatigue_guard import __version__
from fatigue_guard.config import Settings, get_settings
from fatigue_guard.registry.access import bound_mlflow_http_retries
from fatigue_guard.serving.auth import build_auth, require_admin
from fatigue_guard.serving.metrics import ApiMetrics
from fatigue_guard.serving.middleware import RequestContextMiddleware
from fatigue_guard.serving.model_watcher import ModelWatcher
from fatigue_guard.serving.openapi import install_openapi
from fatigue_guard.serving.problems import install_problem_handlers
from fatigue_guard.serving.routes import (
    admin,
    dashboard,
    edge,
    feedback,
    health,
    me,
    observability,
    predictions,
    sync,
)
from fatigue_guard.serving.served_by import ServedByMiddleware
from fatigue_guard.serving.shutdown import SHUTDOWN_STATE_KEY
from fatigue_guard.serving.state import ServingState
from fatigue_guard.storage.factory import Storage, build_storage
from fatigue_guard.storage.recording.recorder_process import RecorderProcess

log = logging.getLogger(__name__)

# Kept free at the end of the grace period for the process to close its pools and exit.
_EXIT_MARGIN_S = 1.0


def _load_model(state: ServingState) -> None:
    """First load: the registry's production version, else the disk cache."""
    try:
        outcome = state.models.start_up(state.settings)
    except Exception as exc:  # a broken registry must not stop the process from starting
        log.error("could not load the production model: %s: %s", type(exc).__name__, exc)
        state.metrics.model_loads.labels("failed").inc()
        return
    state.metrics.observe_model(state.models, outcome)
    if state.models.current is None:
        # Start anyway: /healthz answers, /readyz says why it is not ready, predictions get 503.
        log.warning("no model to serve yet: %s", outcome.reason)
        state.metrics.model_loads.labels("none").inc()
    elif state.models.source == "cache":
        state.metrics.model_loads.labels("cache").inc()


def _open_storage(settings: Settings) -> Storage:
    storage = build_storage(settings)
    if settings.recorder_process:
        storage.recorder = RecorderProcess(settings, local=storage.recorder)
    try:
        # Refuses an unmigrated or older schema, naming the command that fixes it.
        storage.check_schema()
    except sa_exc.OperationalError:
        # The DB is down, not wrong: serve anyway; answers are spooled until it returns.
        log.warning("SQL database unreachable at start-up; predictions will be spooled")
    return storage


# (metric, help, RecorderStats field). Gauges read the recorder's counters at scrape time, so
# the scrape runs no SQL. fg_group_committed_records / fg_group_commits is the mean group size:
# how many requests share one durable commit.
_STORAGE_GAUGES = (
    ("fg_outbox_backlog", "Records waiting to be written to the blob store.", "outbox_backlog"),
    (
        "fg_blob_flush_failures",
        "Failed attempts to write a feature batch to the blob store (cumulative).",
        "flush_failures",
    ),
    (
        "fg_spooled_records",
        "Records written to the local spool because the SQL DB was unreachable (cumulative).",
        "spooled_total",
    ),
    (
        "fg_group_commits",
        "Durable commits made by the prediction group-commit writer (cumulative).",
        "group_commits",
    ),
    (
        "fg_group_committed_records",
        "Predictions made durable by the group-commit writer (cumulative).",
        "group_committed_records",
    ),
)


def _bind_storage_metrics(state: ServingState) -> None:
    recorder = state.recorder
    for name, doc, field in _STORAGE_GAUGES:
        state.metrics.bind_gauge(
            name, doc, lambda field=field: float(getattr(recorder.stats(), field))
        )
    state.metrics.bind_counter(
        "fg_spool_write_failures",
        "Spool writes that failed while the SQL DB was unreachable (full or unwritable disk); "
        "their predictions were refused with 503.",
        lambda: float(recorder.stats().spool_write_failures),
    )


class _Monitoring:
    """The scheduled monitor, its retraining worker and edge publishing, for one API process."""

    def __init__(self, state: ServingState) -> None:
        from fatigue_guard.lifecycle.deployments import DeploymentRecorder
        from fatigue_guard.lifecycle.trigger import BackgroundRetrainer
        from fatigue_guard.lifecycle.wiring import lifecycle_bus
        from fatigue_guard.monitoring import MonitorScheduler, run_monitor

        assert state.storage is not None
        # A retrain in this process promotes here: this process writes the audit row and
        # publishes the edge bundle, not the other replicas.
        bus = lifecycle_bus(state.settings, audit=DeploymentRecorder(state.storage, state.settings))
        self.retrainer = BackgroundRetrainer(state.settings, state.storage, bus)
        self.scheduler = MonitorScheduler(
            state.settings,
            self.retrainer,
            run=functools.partial(run_monitor, storage=state.storage),
        )

    def stop(self) -> None:
        self.scheduler.stop()


def _start_monitoring(state: ServingState) -> _Monitoring:
    monitoring = _Monitoring(state)
    monitoring.scheduler.start()  # no-op when FATIGUE_GUARD_MONITOR_ENABLED=false
    state.monitoring = monitoring
    return monitoring


def create_app(settings: Settings | None = None, *, storage: Storage | None = None) -> FastAPI:
    """Build the API. ``storage`` replaces the data plane built from ``settings`` (tests)."""
    settings = settings or get_settings()
    state = ServingState(settings=settings, metrics=ApiMetrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        owns_storage = storage is None
        state.storage = storage or _open_storage(settings)
        state.auth = build_auth(settings, state.storage.verify_device_key)
        _bind_storage_metrics(state)
        state.storage.start()
        bound_mlflow_http_retries(settings)
        # Off the event loop: the first load downloads and checks a model (seconds).
        await run_in_threadpool(_load_model, state)
        # Everything alive now (modules, MLflow, the model) lives as long as the process: keep
        # it out of the collector's full passes, which otherwise pause requests for 100+ ms.
        gc.freeze()
        watcher = ModelWatcher(
            state.models,
            settings,
            lambda outcome: state.metrics.observe_model(state.models, outcome),
        )
        watcher.start()
        monitor = _start_monitoring(state)
        try:
            # Lifespan state: the server marks the stop signal's arrival on this object.
            yield {SHUTDOWN_STATE_KEY: state.shutdown}
        finally:
            monitor.stop()
            watcher.stop()
            # What the history writer still holds goes to SQL while the data plane is up.
            state.close_personal_baselines()
            if owns_storage:
                # Within what is left of the grace period: the recorder's stop may spend its
                # timeout in several steps (committing, the outbox thread, then an outbox drain
                # that also ships the rows other replicas keep adding under load), so it gets a
                # third. What it cannot ship by then stays durable in SQL or the spool.
                left = state.shutdown.remaining_s() - _EXIT_MARGIN_S
                state.storage.stop(max(0.5, left / 3))
                state.storage.close()

    app = FastAPI(
        title="fatigue-guard",
        version=__version__,
        summary="Fatigue-event predictions from wearable sleep and heart-rate features.",
        lifespan=lifespan,
        # /openapi.json is served either way: clients and the fuzzer read it.
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
    )
    app.state.serving = state
    install_problem_handlers(app)
    install_openapi(app)
    for router in (health, predictions, feedback, sync, edge, admin, me):
        app.include_router(router.router)
    app.include_router(dashboard.router)
    # Not public: the admin routes' checks (404 without a configured token, else 401 or 403).
    metrics_guard = [] if settings.metrics_public else [Depends(require_admin)]
    app.include_router(observability.router, dependencies=metrics_guard)
    app.add_middleware(
        RequestContextMiddleware, metrics=state.metrics, max_body_bytes=settings.max_body_bytes
    )
    app.add_middleware(ServedByMiddleware)
    return app
