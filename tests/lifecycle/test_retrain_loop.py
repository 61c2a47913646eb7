"""The closed loop over real HTTP, with two API replicas sharing one database:

baseline model serving -> drifted traffic with feedback -> monitor breach -> retrain (exactly one
across replicas) -> gate -> production alias moves -> both APIs answer with the new version ->
precision on a later post-drift hold-out at or above the floor. Every step leaves a linked row.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fatigue_guard.config import Settings
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.contract.tables import write_table
from fatigue_guard.demo import request_bodies, send_all
from fatigue_guard.lifecycle.deployments import DeploymentRecorder
from fatigue_guard.lifecycle.registration import train_and_register
from fatigue_guard.lifecycle.trigger import BackgroundRetrainer
from fatigue_guard.lifecycle.wiring import lifecycle_bus
from fatigue_guard.monitoring import run_monitor
from fatigue_guard.registry import get_model_by_alias, load_pipeline
from fatigue_guard.serving.app import create_app
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from fatigue_guard.storage.factory import Storage, build_storage
from tests.fixtures.live_server import LiveServer

ADMIN = "loop-admin-token-0123456789"
DRIFT_DAY, LIVE_END_DAY, DAYS = 20, 34, 40


def _day(frame: pd.DataFrame) -> pd.Series:
    return (frame["measured_at"] - frame["measured_at"].min()).dt.days


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Settings, list[Storage], list[str], pd.DataFrame]]:
    cohort = simulate_cohort(
        CohortConfig(users=300, days=DAYS, scenario="seasonal_sleep", drift_start=DRIFT_DAY, seed=3)
    )
    day = _day(cohort)
    baseline = tmp_path / "baseline.parquet"
    write_table(cohort[day < DRIFT_DAY], baseline)
    settings = Settings(
        home=tmp_path / "home",
        database_url=None,
        azure_storage_connection_string=None,
        mlflow_tracking_uri=None,
        n_estimators=30,
        search_budget_s=0.0,
        baseline_data=baseline,
        admin_token=ADMIN,
        rate_limit_burst=100_000,
        blob_flush_max_age_s=0.2,
    )
    first = train_and_register(settings, baseline, seed=3)
    assert first.alias == "production"
    storages = [build_storage(settings) for _ in range(2)]
    storages[0].upgrade()
    servers = [LiveServer(create_app(settings, storage=s)).start() for s in storages]
    try:
        yield settings, storages, [s.url for s in servers], cohort
    finally:
        for server in servers:
            server.stop()
        for storage in storages:
            storage.stop()
            storage.close()


def _send_with_feedback(
    url: str, storage: Storage, frame: pd.DataFrame, keys: dict[str, str]
) -> None:
    import httpx

    bodies = request_bodies(frame)
    _, _, errors = send_all(
        url,
        bodies,
        concurrency=8,
        headers_for=lambda b: {"Authorization": f"Bearer {keys[b['user_id']]}"},
    )
    assert errors == 0
    with httpx.Client(base_url=url, timeout=10) as client:
        for body, label in zip(bodies, frame["fatigue_event"], strict=True):
            response = client.post(
                "/v1/feedback",
                json={
                    "event_id": body["event_id"],
                    "fatigue_event": bool(label),
                    "source": "self_report",
                    "observed_at": body["measured_at"],
                },
                headers={"Authorization": f"Bearer {keys[body['user_id']]}"},
            )
            assert response.status_code == 201, response.text
    assert storage.recorder.drain(timeout_s=60)


@pytest.mark.slow
def test_drift_retrains_once_across_replicas_and_both_serve_the_new_model(
    replicas: tuple[Settings, list[Storage], list[str], pd.DataFrame],
) -> None:
    settings, storages, urls, cohort = replicas
    day = _day(cohort)
    window_start = LIVE_END_DAY - 7
    live = cohort[(day >= window_start) & (day < LIVE_END_DAY)].sample(n=3000, random_state=1)
    later = cohort[day >= LIVE_END_DAY]
    keys = {u: storages[0].create_device_key(u).plaintext for u in live["user_id"].unique()}
    ordered = live.sort_values("measured_at")
    halves = [ordered.iloc[: len(ordered) // 2], ordered.iloc[len(ordered) // 2 :]]
    for url, storage, half in zip(urls, storages, halves, strict=True):
        _send_with_feedback(url, storage, half, keys)

    # Both replicas run their scheduled monitor at the same moment, each with its own worker.
    now = (cohort["measured_at"].min() + timedelta(days=LIVE_END_DAY)).to_pydatetime()
    workers = [
        BackgroundRetrainer(
            settings,
            s,
            lifecycle_bus(settings, audit=DeploymentRecorder(s, settings), publish_edge=False),
        )
        for s in storages
    ]
    reports: list[Any] = [None, None]

    def monitor(i: int) -> None:
        reports[i] = run_monitor(
            settings, now=now, window=timedelta(days=7), storage=storages[i], on_breach=workers[i]
        )

    threads = [threading.Thread(target=monitor, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for worker in workers:
        worker.join(timeout_s=600)
    assert any(r.decision.breach for r in reports), [r.decision.reasons for r in reports]
    drifted = {f.name for r in reports for f in r.drifted_features}
    assert drifted & {"sleep_duration_h", "sleep_efficiency", "waso_min", "sleep_debt_7d_h"}

    with storages[0].uow_factory() as uow:
        runs = uow.retrain_runs.all()
        assert len(runs) == 1, [(r.status, r.reason) for r in runs]  # one across replicas
        run = runs[0]
        assert run.status == "promoted", run.details
        assert run.drift_report_id in {r.id for r in reports}
        assert run.mlflow_run_id and run.model_version == "2"
        deployments = uow.deployments.history(settings.registered_model_name)
        assert [(d.from_version, d.to_version, d.retrain_run_id) for d in deployments] == [
            ("1", "2", run.id)
        ]

    import httpx

    body = request_bodies(later.iloc[:1])[0]
    key = storages[0].create_device_key(body["user_id"]).plaintext
    for url in urls:
        with httpx.Client(base_url=url, timeout=30) as client:
            reload = client.post(
                "/v1/admin/models/reload", headers={"Authorization": f"Bearer {ADMIN}"}
            )
            assert reload.status_code == 200, reload.text
            answer = client.post(
                "/v1/predictions", json=body, headers={"Authorization": f"Bearer {key}"}
            ).json()
        assert answer["model"]["version"] == "2"

    model = get_model_by_alias(settings, "production")
    assert model is not None and model.version == "2"
    scores = load_pipeline(settings, model).predict_proba(feature_matrix(later))[:, 1]
    alerts = scores >= model.threshold
    precision = later["fatigue_event"].to_numpy()[alerts].mean()
    assert precision >= settings.precision_floor - 0.03
