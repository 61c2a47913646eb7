"""A seeded instance for the dashboard: a live API over real HTTP with a trained registry and
everything the page shows, made through the product's own code paths.

The seed, in order: predictions over HTTP (timestamps moved to the last days, so they are live
now) and their feedback; three stored monitoring reports over overlapping windows (the
monitor's own ``run_monitor``); one retraining run linked to the last report
(``run_retraining``: train, register, gate, promote, audit row, edge bundle); a rollback
(``lifecycle.gate.rollback``, same bus); offline edge events uploaded with ``POST /v1/sync``;
and a few refused requests, so that the error share is not zero.

The registry is a private copy of the session's (the alias moves here touch no other test), and
the gate's tolerances are wide so that the run's outcome (promoted) does not depend on how the
small retrained forest happens to compare.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from fatigue_guard.contract.tables import write_table
from fatigue_guard.demo import request_bodies, send_all
from fatigue_guard.lifecycle.deployments import DeploymentRecorder
from fatigue_guard.lifecycle.gate import rollback
from fatigue_guard.lifecycle.retrain import run_retraining
from fatigue_guard.lifecycle.wiring import lifecycle_bus
from fatigue_guard.monitoring import run_monitor
from fatigue_guard.serving.routes import dashboard as dashboard_routes
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.services import service_unavailable
from tests.serving.conftest import ADMIN_TOKEN, LiveApi, start_api
from tests.serving.lifecycle_helpers import private_registry_uri

PREDICTIONS = 1500
EDGE_EVENTS = 120
CHROMIUM = "/usr/bin/chromium"
# The flags a headless browser needs here: no sandbox (root in a container), no GPU, and none of
# Chromium's own background traffic (this machine refuses outside connections).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Seeded:
    api: LiveApi
    reports: list[int]
    retrain_run_id: int
    promoted: str  # the version the retraining run promoted
    rolled_back_to: str
    predictions: int
    edge_events: int


def _live_now(frame: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The same rows, moved by whole days so the last one lies just before ``now``."""
    frame = frame.copy()
    latest = frame["measured_at"].max().to_pydatetime()
    days = (now - timedelta(minutes=5) - latest).days
    frame["measured_at"] = frame["measured_at"] + pd.Timedelta(days=days)
    return frame


def _send_feedback(api: LiveApi, bodies: list[dict[str, Any]], labels: list[bool]) -> None:
    with httpx.Client(base_url=api.url, timeout=30) as client:
        for body, label in zip(bodies, labels, strict=True):
            response = client.post(
                "/v1/feedback",
                json={
                    "event_id": body["event_id"],
                    "fatigue_event": bool(label),
                    "source": "self_report",
                    "observed_at": body["measured_at"],
                },
                headers={"Authorization": f"Bearer {api.key_for(body['user_id'])}"},
            )
            assert response.status_code == 201, response.text


def _sync_edge(api: LiveApi, bodies: list[dict[str, Any]], version: str) -> int:
    by_user: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        by_user.setdefault(body["user_id"], []).append(body)
    accepted = 0
    with httpx.Client(base_url=api.url, timeout=30) as client:
        for user, own in by_user.items():
            events = [
                {
                    "event_id": b["event_id"],
                    "user_id": user,
                    "measured_at": b["measured_at"],
                    "features": b["features"],
                    "prediction": {
                        "fatigue_probability": 0.2,
                        "alert": False,
                        "model_version": version,
                    },
                }
                for b in own
            ]
            response = client.post(
                "/v1/sync",
                json={"events": events},
                headers={"Authorization": f"Bearer {api.key_for(user)}"},
            )
            assert response.status_code == 200, response.text
            accepted += response.json()["accepted"]
    return accepted


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, trained_registry: TrainedRegistry
) -> Iterator[Seeded]:
    root = tmp_path_factory.mktemp("dashboard")
    baseline = root / "baseline.parquet"
    write_table(trained_registry.cohort, baseline)
    settings = trained_registry.settings(
        root / "home",
        mlflow_tracking_uri=private_registry_uri(trained_registry, root / "registry"),
        admin_token=ADMIN_TOKEN,
        blob_flush_max_age_s=0.2,
        baseline_data=baseline,
        gate_recall_tolerance=0.99,
        gate_precision_tolerance=0.99,
        monitor_min_samples=200,
        rate_limit_burst=100_000,
    )
    now = datetime.now(UTC)
    live = _live_now(trained_registry.live, now).sort_values("measured_at")
    sample = live.sample(n=PREDICTIONS + EDGE_EVENTS, random_state=5).sort_values("measured_at")
    served, offline = sample.iloc[:PREDICTIONS], sample.iloc[PREDICTIONS:]
    with pytest.MonkeyPatch.context() as patch:
        # Snapshot the metrics often, so the seed's traffic spans many points.
        patch.setattr(dashboard_routes, "SAMPLE_INTERVAL_S", 0.5)
        instance = start_api(settings, trained_registry)
        api = next(instance)
    try:
        bodies = request_bodies(served)
        for user in served["user_id"].unique():
            api.key_for(str(user))
        _, _, errors = send_all(
            api.url,
            bodies,
            concurrency=4,
            headers_for=lambda b: {"Authorization": f"Bearer {api.key_for(b['user_id'])}"},
        )
        assert errors == 0
        _send_feedback(api, bodies, [bool(v) for v in served["fatigue_event"]])
        assert api.storage.recorder.drain(timeout_s=60)

        # Three scheduled runs, a day apart, each over the two days before it.
        last = served["measured_at"].max().to_pydatetime() + timedelta(minutes=1)
        reports = [
            run_monitor(
                settings,
                now=last - timedelta(days=days_ago),
                window=timedelta(days=2),
                storage=api.storage,
            )
            for days_ago in (2, 1, 0)
        ]
        assert all(r.id is not None and r.html_key for r in reports)

        bus = lifecycle_bus(settings, audit=DeploymentRecorder(api.storage, settings))
        outcome = run_retraining(
            settings,
            api.storage,
            bus=bus,
            trigger="monitor",
            reason=f"drift report {reports[-1].id}",
            drift_report_id=reports[-1].id,
            ignore_cooldown=True,
        )
        assert outcome.status == "promoted", (outcome.reason, outcome.details)
        assert outcome.model_version is not None and outcome.run_id is not None
        back = rollback(settings, actor="test", reason="dashboard seed: back to v1", bus=bus)

        with api.client() as client:
            manifest = client.get(
                "/v1/models/edge/manifest",
                headers={"Authorization": f"Bearer {api.key_for(str(offline['user_id'].iloc[0]))}"},
            )
        assert manifest.status_code == 200, manifest.text
        accepted = _sync_edge(api, request_bodies(offline), manifest.json()["model_version"])
        assert accepted == EDGE_EVENTS

        with api.admin() as admin:
            assert admin.post("/v1/admin/models/reload").status_code == 200
        # Refused requests: the 4xx share is not zero either.
        with api.client(str(served["user_id"].iloc[0])) as client:
            bad = {**bodies[0], "event_id": str(uuid.uuid4()), "features": {"local_hour": 99}}
            assert client.post("/v1/predictions", json=bad).status_code == 422
        assert api.storage.recorder.drain(timeout_s=60)
        yield Seeded(
            api=api,
            reports=[int(r.id) for r in reports if r.id is not None],
            retrain_run_id=outcome.run_id,
            promoted=outcome.model_version,
            rolled_back_to=back.version,
            predictions=PREDICTIONS,
            edge_events=accepted,
        )
    finally:
        next(instance, None)


@pytest.fixture
def bare(tmp_path: Path, trained_registry: TrainedRegistry) -> Iterator[LiveApi]:
    """A fresh instance: a served model, and nothing recorded, reported or retrained yet."""
    settings = trained_registry.settings(
        tmp_path / "home", admin_token=ADMIN_TOKEN, blob_flush_max_age_s=0.2
    )
    yield from start_api(settings, trained_registry)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium through Playwright (never a downloaded browser build).

    Missing Chromium skips locally and fails under CI=true, like the other services tests need.
    """
    path = shutil.which("chromium") or CHROMIUM
    if not Path(path).exists():
        service_unavailable(f"no Chromium at {path} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
