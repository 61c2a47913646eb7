"""The scale-out configuration runs, not just its docs.

One ``mlflow server`` process (PostgreSQL backend store; artifacts in Azure Blob Storage via
Azurite through ``wasbs://``, proxied by the server so only it holds the storage credentials),
and two separate API processes sharing one PostgreSQL database, one Azurite container and that
MLflow server. A promotion made through the CLI (validation gate included) reaches both API
processes while they are under load, and every answered prediction lands exactly once in SQL and
exactly once in the blob feature store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from azure.storage.blob import BlobServiceClient
from psycopg import sql

from fatigue_guard.config import Settings
from fatigue_guard.demo import request_bodies, settings_env
from fatigue_guard.storage.factory import build_storage
from tests.fixtures.exactly_once import assert_stored_exactly_once
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.services import free_port
from tests.serving.conftest import ADMIN_TOKEN
from tests.serving.lifecycle_helpers import (
    read_version,
    register_copy,
    reregister_version,
    serve_processes,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.azurite]

POLL_S = 2.0
LOAD_ALLOWANCE_S = 1.5
MAX_LOAD_S = 150.0  # an upper bound only: the load stops once the promotion has arrived
THINK_S = 0.05  # per client between requests: steady load that leaves the CLI some CPU
MAX_REQUESTS = 3000


@contextmanager
def mlflow_database(admin_dsn: str) -> Iterator[str]:
    name = f"fg_mlflow_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def mlflow_server(backend: str, artifacts: str, azure: str, log: Path) -> Iterator[str]:
    """Start ``mlflow server`` and yield its URL at once; :func:`wait_healthy` waits for it."""
    port = free_port()
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": azure}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend]
    command += ["--artifacts-destination", artifacts, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_healthy(url: str, log: Path, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert time.monotonic() < deadline, (
            f"mlflow server did not start:\n{log.read_text()[-3000:]}"
        )
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)


def promote_via_cli(settings: Settings, version: str) -> subprocess.CompletedProcess[str]:
    """``fatigue-guard promote --version V`` in its own process (the gate runs there)."""
    command = [sys.executable, "-m", "fatigue_guard.cli.main", "promote"]
    command += ["--version", version, "--reason", "scale-out test"]
    return subprocess.run(
        command, env=settings_env(settings), capture_output=True, text=True, timeout=180
    )


def test_cli_promotion_reaches_two_api_processes_and_records_land_once(
    tmp_path: Path,
    trained_registry: TrainedRegistry,
    postgres_server: str,
    postgres_url: str,
    azurite: str,
) -> None:
    service = BlobServiceClient.from_connection_string(azurite)
    artifacts_container = f"mlflow{uuid.uuid4().hex[:12]}"
    service.create_container(artifacts_container)
    wasbs = f"wasbs://{artifacts_container}@devstoreaccount1.blob.core.windows.net/artifacts"
    blob_container = f"features{uuid.uuid4().hex[:12]}"
    phases: dict[str, float] = {}
    started = time.monotonic()

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - started - sum(phases.values()), 1)

    with ExitStack() as stack:
        backend = stack.enter_context(mlflow_database(postgres_server))
        server_log = tmp_path / "mlflow-server.log"
        tracking = stack.enter_context(mlflow_server(backend, wasbs, azurite, server_log))

        def settings_for(name: str) -> Settings:
            return trained_registry.settings(
                tmp_path / name,
                mlflow_tracking_uri=tracking,
                database_url=postgres_url,
                azure_storage_connection_string=azurite,
                blob_container=blob_container,
                admin_token=ADMIN_TOKEN,
            )

        # While the MLflow server starts: migrate our database, issue keys, start the APIs
        # (they find no registry yet and load the production version at their next poll),
        # and read the session's model (training it again here would take a minute).
        trainer = settings_for("trainer")
        storage = build_storage(trainer)
        storage.upgrade()
        live = trained_registry.live
        bodies = request_bodies(live[live["user_id"].isin(live["user_id"].unique()[:8])])
        keys = {u: storage.create_device_key(u).plaintext for u in {b["user_id"] for b in bodies}}
        storage.close()
        apps = [(settings_for(f"api{i}"), free_port()) for i in (1, 2)]
        apis = stack.enter_context(serve_processes(apps, workers=1, poll_s=POLL_S))
        copy = read_version(trained_registry, tmp_path / "copy")
        wait_healthy(tracking, server_log)
        phase("mlflow server up")
        first = register_copy(copy, trainer)
        candidate = reregister_version(trainer, first)
        assert list(service.get_container_client(artifacts_container).list_blobs())
        phase("versions registered")
        urls = apis.wait_ready()
        phase("APIs ready")
        answers: list[tuple[str, float, int, str | None]] = []  # url, sent, status, version
        event_ids: list[str] = []
        lock, stop = threading.Lock(), threading.Event()

        def client(url: str, offset: int) -> None:
            deadline = time.monotonic() + MAX_LOAD_S
            with httpx.Client(base_url=url, timeout=10) as http:
                for n in range(MAX_REQUESTS):
                    if stop.is_set() or time.monotonic() > deadline:
                        return
                    body = {**bodies[(n + offset) % len(bodies)], "event_id": str(uuid.uuid4())}
                    auth = {"Authorization": f"Bearer {keys[body['user_id']]}"}
                    sent = time.monotonic()
                    try:
                        r = http.post("/v1/predictions", json=body, headers=auth)
                        status = r.status_code
                    except httpx.HTTPError:
                        status = 0
                    version = r.json()["model"]["version"] if status == 200 else None
                    with lock:
                        answers.append((url, sent, status, version))
                        if status == 200:
                            event_ids.append(body["event_id"])
                    time.sleep(THINK_S)

        threads = [
            threading.Thread(target=client, args=(url, i * 7), daemon=True)
            for i, url in enumerate(urls * 2)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        promoted_at = time.monotonic()
        done = promote_via_cli(trainer, candidate)
        assert done.returncode == 0, done.stdout + done.stderr
        cli_s = time.monotonic() - promoted_at
        deadline = time.monotonic() + POLL_S + LOAD_ALLOWANCE_S + 5
        reached: dict[str, float] = {}
        while len(reached) < len(urls) and time.monotonic() < deadline:
            with lock:
                for url, sent, _status, version in answers:
                    if version == candidate and url not in reached:
                        reached[url] = sent - promoted_at
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for url in urls:
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # the details need the token
            ready = httpx.get(f"{url}/readyz", headers=admin, timeout=10).json()["checks"]["model"]
            assert ready["version"] == candidate
            assert ready["source"] == "registry"
        phase("load and promotion")
        stack.close()  # stops the APIs: a graceful stop flushes what they hold to the stores
        phase("shutdown")

    print(f"\nCLI promote took {cli_s:.1f} s; first answer from v{candidate} after {reached}")
    assert set(reached) == set(urls), "the promotion did not reach every API process"
    assert max(reached.values()) <= cli_s + POLL_S + LOAD_ALLOWANCE_S
    assert [a for a in answers if a[2] != 200] == []
    assert {a[0] for a in answers} == set(urls)
    assert len(event_ids) == len(set(event_ids)) > 50

    reader = build_storage(settings_for("reader"))
    try:
        assert_stored_exactly_once(reader, event_ids, blob_wait_s=30)
    finally:
        reader.close()
    phase("records checked")
    print(f"phases (s): {phases}")
