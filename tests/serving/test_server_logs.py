"""What the server writes to its log: one access line a request at info (method, route template,
status, duration; nothing about the user), and a cause when a feature batch cannot be written."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fatigue_guard.demo import request_bodies
from fatigue_guard.storage.factory import build_storage
from fatigue_guard.storage.recording.outbox import FlushPolicy, OutboxFlusher
from fatigue_guard.storage.records import PredictionRecord
from tests.fixtures.live_server import free_port
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.waiting import wait_until
from tests.storage.conftest import spread_records, storage_settings

ADMIN_TOKEN = "log-test-admin-token-0123456789"
ACCESS_FIELDS = {"request_id", "method", "route", "status", "ms"}


class ServeProcess:
    """``fatigue-guard serve`` as a separate process, its log collected in a file."""

    def __init__(self, home: Path, registry: TrainedRegistry, log_level: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FATIGUE_GUARD_")}
        env.update(
            FATIGUE_GUARD_HOME=str(home),
            MLFLOW_TRACKING_URI=registry.tracking_uri,
            FATIGUE_GUARD_ADMIN_TOKEN=ADMIN_TOKEN,
            FATIGUE_GUARD_MONITOR_ENABLED="false",
            FATIGUE_GUARD_RECORDER_PROCESS="false",
        )
        command = [sys.executable, "-m", "fatigue_guard.cli.main", "serve", "--port"]
        command += [str(self.port), "--log-level", log_level]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited:\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout_s=timeout_s, poll_s=0.2)
        assert up(), self.log()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def served(tmp_path: Path, trained_registry: TrainedRegistry) -> Iterator[tuple[ServeProcess, str]]:
    """A running ``serve --log-level info`` and a device key of ``log-user``."""
    settings = trained_registry.settings(tmp_path)
    storage = build_storage(settings)
    storage.upgrade()
    key = storage.create_device_key("log-user").plaintext
    storage.close()
    server = ServeProcess(tmp_path, trained_registry, "info")
    try:
        server.wait_ready()
        yield server, key
    finally:
        server.stop()


def test_serve_at_info_writes_one_access_line_a_request_without_user_data(
    served: tuple[ServeProcess, str], trained_registry: TrainedRegistry
) -> None:
    server, key = served
    body: dict[str, Any] = {**request_bodies(trained_registry.live.iloc[:1])[0]}
    body["user_id"] = "log-user"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        before = len(_access_lines(server.log()))  # the readiness probes
        device = {"Authorization": f"Bearer {key}"}
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.post("/v1/predictions", json=body, headers=device).status_code == 200
        assert client.get("/v1/me", headers=device).status_code == 200
        erased = client.delete("/v1/admin/users/someone-to-forget", headers=admin)
        assert erased.status_code == 200
        assert client.get("/v1/no/such/route/log-user").status_code == 404
    wait_until(lambda: len(_access_lines(server.log())) >= before + 4, timeout_s=10)
    server.stop()
    text = server.log()
    lines = _access_lines(text)[before:]
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("POST", "/v1/predictions", 200),
        ("GET", "/v1/me", 200),
        ("DELETE", "/v1/admin/users/{user_id}", 200),
        ("GET", "unmatched", 404),
    ]
    assert all(set(line) == ACCESS_FIELDS and line["ms"] >= 0 for line in lines)
    # Nothing the requests carried reaches the log: no user, key, event or path with an id.
    for secret in (key, ADMIN_TOKEN, "log-user", "someone-to-forget", body["event_id"]):
        assert secret not in text


def _access_lines(text: str) -> list[dict[str, Any]]:
    marker = "fatigue_guard.access: "
    return [json.loads(line.split(marker, 1)[1]) for line in text.splitlines() if marker in line]


class _RefusingStore:
    """A feature store whose writes fail the way an unreachable Azure endpoint does."""

    def write_batch(self, batch_id: str, records: list[PredictionRecord]) -> None:
        raise ConnectionError("Connection refused by blob endpoint 127.0.0.1:10000")


def test_a_failed_feature_batch_write_logs_its_cause_without_payload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = build_storage(storage_settings(tmp_path))
    storage.upgrade()
    records = spread_records(5)
    try:
        storage.recorder.record_many(records)
        flusher = OutboxFlusher(
            storage.uow_factory,
            _RefusingStore(),  # type: ignore[arg-type]
            FlushPolicy(retry_base_s=0.5, retry_max_s=1.0),
        )
        caplog.set_level(logging.WARNING, logger="fatigue_guard.storage")
        assert flusher.flush_once(force=True) == 0
    finally:
        storage.close()
    failures = [r for r in caplog.records if r.name.endswith("outbox")]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]
    message = failures[0].getMessage()
    assert "ConnectionError" in message
    assert "Connection refused by blob endpoint 127.0.0.1:10000" in message
    assert "5 records" in message
    assert "\n" not in message and failures[0].exc_info is None
    for record in records:
        assert record.user_id not in message and str(record.event_id) not in message
