"""Advisory mode over real HTTP: from a model that cannot meet the floor to one that alerts.

Three users' first days are too little for any threshold's precision bound to clear the floor:
``fatigue-guard train --advisory`` registers the version anyway. The API (real uvicorn, SQLite
and the local blob store, the session's MLflow store) serves its probabilities with
``alert: false, alerting: "advisory"``, and so does a phone on the edge bundle. Phones of other
users then send features and feedback over HTTP; the monitor names the advisory production as a
reason to retrain, the retrained version meets the floor on the accrued labels, the gate
promotes it over the advisory one, and the API's watcher swaps to it: ``alerting: "on"``, with
alerts.

The cohort's label follows one feature (sleep debt) with 8 % of labels flipped: a forest learns
it from a few hundred rows, so what keeps the first version advisory is only how few people
and days it saw.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from fatigue_guard.cli import models as models_cli
from fatigue_guard.cli import train as train_cli
from fatigue_guard.client.client import FatigueClient
from fatigue_guard.config import Settings, get_settings
from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.tables import write_table
from fatigue_guard.demo import request_bodies
from fatigue_guard.lifecycle.deployments import DeploymentRecorder
from fatigue_guard.lifecycle.trigger import retrain_on_breach
from fatigue_guard.lifecycle.wiring import lifecycle_bus
from fatigue_guard.monitoring import run_monitor
from fatigue_guard.monitoring.advisory import ADVISORY_REASON
from fatigue_guard.registry import get_model_by_alias
from fatigue_guard.serving.app import create_app
from fatigue_guard.storage.factory import Storage, build_storage
from tests.fixtures.live_server import LiveServer
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.waiting import wait_until
from tests.training.conftest import synthetic_cohort

ADMIN = "advisory-admin-token-0123456789"
MODEL = "fatigue-advisory-loop"
USERS, DAYS = 23, 8
FIRST_USERS, FIRST_DAYS = 3, 4


def _cohort(now: datetime) -> pd.DataFrame:
    """Contract rows whose last day is yesterday (inside the retraining job's live window)."""
    frame = synthetic_cohort(USERS, DAYS, seed=7)
    rng = np.random.default_rng(8)
    frame[LABEL_COLUMN] = (frame["sleep_debt_7d_h"] > 6) ^ (rng.random(len(frame)) < 0.08)
    frame["event_id"] = [str(uuid.UUID(int=int(i) + 1)) for i in rng.integers(0, 2**63, len(frame))]
    shift = pd.Timestamp(now).normalize() - pd.Timedelta(days=DAYS) - frame["measured_at"].min()
    frame["measured_at"] = frame["measured_at"] + shift.floor("D")
    return frame


def _day(frame: pd.DataFrame) -> pd.Series:
    return (frame["measured_at"] - frame["measured_at"].min()).dt.days


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_registry: TrainedRegistry
) -> Iterator[tuple[typer.Typer, Settings]]:
    """The train/models commands and, for the API and the job, the same settings they read:
    a fresh registered model in the session's MLflow store, SQLite and blobs under HOME."""
    env = {
        "FATIGUE_GUARD_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": trained_registry.tracking_uri,
        "FATIGUE_GUARD_REGISTERED_MODEL_NAME": MODEL,
        "FATIGUE_GUARD_N_ESTIMATORS": "20",
        "FATIGUE_GUARD_CV_FOLDS": "2",
        "FATIGUE_GUARD_ADMIN_TOKEN": ADMIN,
        "FATIGUE_GUARD_MODEL_POLL_INTERVAL_S": "0.3",
        "FATIGUE_GUARD_BLOB_FLUSH_MAX_AGE_S": "0.2",
        "FATIGUE_GUARD_RATE_LIMIT_BURST": "100000",
        "FATIGUE_GUARD_GATE_MIN_POSITIVES": "10",
        "FATIGUE_GUARD_MONITOR_MIN_LABELS": "50",
        "FATIGUE_GUARD_SEARCH_BUDGET_S": "0",
        "FATIGUE_GUARD_RETRAIN_ADVISORY": "true",
        "COLUMNS": "250",
    }
    for name in ("FATIGUE_GUARD_DATABASE_URL", "FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = typer.Typer()
    app.command("train")(train_cli.train)
    app.command("models")(models_cli.models)
    yield app, get_settings()
    get_settings.cache_clear()


def _predict(url: str, keys: dict[str, str], bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each user's bodies in one ``predictions:batch`` call with that user's key."""
    answers = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for user in sorted({b["user_id"] for b in bodies}):
            own = [b for b in bodies if b["user_id"] == user]
            response = client.post(
                "/v1/predictions:batch",
                json={"items": own},
                headers={"Authorization": f"Bearer {keys[user]}"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["failed"] == 0, response.text
            answers += [item["result"] for item in response.json()["items"]]
    return answers


def _feedback(url: str, keys: dict[str, str], bodies: list[dict[str, Any]], labels: Any) -> None:
    def send(chunk: list[tuple[dict[str, Any], bool]]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for body, label in chunk:
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

    pairs = list(zip(bodies, labels, strict=True))
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(send, [pairs[i::6] for i in range(6)]))


def _answer(url: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    fresh = {**body, "event_id": str(uuid.uuid4())}
    response = httpx.post(
        f"{url}/v1/predictions", json=fresh, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _phone_offline(url: str, key: str, user: str, data_dir: Path, body: dict[str, Any]) -> Any:
    """A phone fetches the edge bundle, then predicts on the device with the server gone."""
    with FatigueClient(url, key, data_dir, user_id=user) as phone:
        assert phone.refresh_model().status == "updated"
    with FatigueClient("http://127.0.0.1:9", key, data_dir, user_id=user, timeout_s=0.5) as phone:
        return phone.predict(body["features"], measured_at=body["measured_at"])


@pytest.mark.slow
def test_advisory_version_serves_without_alerts_until_a_retrained_one_meets_the_floor(
    cli: tuple[typer.Typer, Settings], tmp_path: Path
) -> None:
    app, settings = cli
    now = datetime.now(UTC)
    cohort = _cohort(now)
    day, user_no = _day(cohort), cohort["user_id"].str[1:].astype(int)
    first = cohort[(user_no < FIRST_USERS) & (day < FIRST_DAYS)]
    live = cohort[user_no >= FIRST_USERS]
    write_table(first, tmp_path / "first.parquet")
    storage: Storage = build_storage(settings)
    storage.upgrade()

    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", "--data", str(tmp_path / "first.parquet"), "--advisory", "--seed", "3"]
    )
    assert trained.exit_code == 0, trained.output
    assert "advisory (alerts off)" in trained.output and "alias production" in trained.output
    listed = runner.invoke(app, ["models"])
    assert listed.exit_code == 0 and "advisory (alerts off)" in listed.output, listed.output
    first_version = get_model_by_alias(settings, "production")
    assert first_version is not None and first_version.alerting == "advisory"

    server = LiveServer(create_app(settings, storage=storage)).start()
    try:
        url = server.url
        keys = {u: storage.create_device_key(u).plaintext for u in live["user_id"].unique()}
        bodies = [{k: v for k, v in b.items() if k != "client"} for b in request_bodies(live)]
        user = bodies[0]["user_id"]

        ready = httpx.get(f"{url}/readyz", headers={"Authorization": f"Bearer {ADMIN}"}).json()
        assert ready["checks"]["model"]["alerting"] == "advisory", ready
        manifest = httpx.get(
            f"{url}/v1/models/edge/manifest", headers={"Authorization": f"Bearer {keys[user]}"}
        ).json()
        assert manifest["alerting"] == "advisory", manifest
        on_phone = _phone_offline(url, keys[user], user, tmp_path / "phone", bodies[0])
        assert (on_phone.served_by, on_phone.alerting, on_phone.alert) == (
            "edge",
            "advisory",
            False,
        )

        answers = _predict(url, keys, bodies)
        assert {(a["alert"], a["alerting"], a["model"]["version"]) for a in answers} == {
            (False, "advisory", first_version.version)
        }
        _feedback(url, keys, bodies, live[LABEL_COLUMN])
        assert storage.recorder.drain(timeout_s=60)

        bus = lifecycle_bus(settings, audit=DeploymentRecorder(storage, settings))
        report = run_monitor(
            settings,
            window=timedelta(days=DAYS + 1),
            storage=storage,
            on_breach=retrain_on_breach(settings, storage, bus),
        )
        assert report.decision.triggered, report.decision.reasons
        assert any(r.startswith(ADVISORY_REASON) for r in report.decision.reasons)
        with storage.uow_factory() as uow:
            runs = [(r.status, r.promoted, r.details) for r in uow.retrain_runs.all()]
        assert [(status, promoted) for status, promoted, _ in runs] == [("promoted", True)], runs
        assert "was advisory: alerts turn on" in runs[0][2]["gate"]["reason"]
        promoted = get_model_by_alias(settings, "production")
        assert promoted is not None and promoted.alerting == "on"

        # The watcher follows the alias: the same API now alerts, at the new threshold.
        high_risk = sorted(bodies, key=lambda b: -b["features"]["sleep_debt_7d_h"])[:20]
        wait_until(
            lambda: _answer(url, keys[user], bodies[0])["model"]["version"] == promoted.version,
            timeout_s=20,
        )
        after = [_answer(url, keys[b["user_id"]], b) for b in high_risk]
        assert {(a["alerting"], a["model"]["version"]) for a in after} == {("on", promoted.version)}
        assert any(a["alert"] for a in after)
        assert all(a["alert"] == (a["fatigue_probability"] >= a["threshold"]) for a in after)
        manifest = httpx.get(
            f"{url}/v1/models/edge/manifest", headers={"Authorization": f"Bearer {keys[user]}"}
        ).json()
        assert (manifest["model_version"], manifest["alerting"]) == (promoted.version, "on")
    finally:
        server.stop()
        storage.stop()
        storage.close()
