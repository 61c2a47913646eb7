"""Durable before it answers: SIGKILL the server under load, lose nothing.

A real ``fatigue-guard serve`` child process takes concurrent traffic (group commit batching the
records) and is killed with SIGKILL while requests are in flight, at a moment no code in it can
prepare for. A fresh data plane on the same HOME then starts (replaying any spool the dead
process left) and every event_id that was answered 200 must be stored, exactly once. Requests
cut off by the kill may or may not be stored: they were never answered, so either is correct.

Two paths: the SQL commit (SQLite, always runs) and the fsync'd spool while the DB is unreachable
(PostgreSQL behind a proxy the test cuts, then SIGKILL; the restart replays the dead process's
spool file).

And the blob side: the whole process group (API, recorder child, batch shipper) is killed while
a feature batch is being written to a slow blob store; a new API process on the same HOME and
database takes the re-sent events (the phones never got an answer for some), and every event
ends up once in SQL and once in the blob store, with the answer it was first given.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from fatigue_guard.config import Settings
from fatigue_guard.demo import field_env, request_bodies, settings_env
from fatigue_guard.serving.app import create_app
from fatigue_guard.storage.factory import build_storage
from tests.fixtures.exactly_once import assert_settled_exactly_once
from tests.fixtures.live_server import LiveServer, free_port
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.services import TcpProxy
from tests.fixtures.waiting import wait_until

CLIENTS = 8


@contextmanager
def served(
    settings: Settings,
    database_url: str | None = None,
    *,
    extra_env: Mapping[str, str] | None = None,
    own_group: bool = False,
) -> Iterator[subprocess.Popen]:
    """``fatigue-guard serve`` as a child process on a free port, configured by environment;
    ``own_group``: in a process group of its own (with its recorder and shipper children), for
    a test to kill all at once."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FATIGUE_GUARD_")}
    env.update(
        FATIGUE_GUARD_HOME=str(settings.home_dir),
        MLFLOW_TRACKING_URI=str(settings.mlflow_tracking_uri),
        FATIGUE_GUARD_RATE_LIMIT_PER_S="100000",
        FATIGUE_GUARD_RATE_LIMIT_BURST="100000",
        FATIGUE_GUARD_MONITOR_ENABLED="false",
    )
    if database_url:
        env["FATIGUE_GUARD_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    cli = Path(sys.executable).with_name("fatigue-guard")
    process = subprocess.Popen(
        [str(cli), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=own_group,
    )
    process.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(process.url + "/readyz", timeout=2).status_code == 200:  # type: ignore[attr-defined]
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("serve did not become ready")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


class Load:
    """``CLIENTS`` threads posting fresh predictions until stopped; keeps the 200-answered ids."""

    def __init__(self, url: str, bodies: list[dict[str, Any]], key_for: Callable[[str], str]):
        self.url = url
        self.bodies = bodies
        self.key_for = key_for
        self.answered: set[str] = set()
        self.errors: list[str] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def _client(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            n = index
            while not self.stop.is_set():
                body = dict(self.bodies[n % len(self.bodies)], event_id=str(uuid.uuid4()))
                n += CLIENTS
                headers = {"Authorization": f"Bearer {self.key_for(body['user_id'])}"}
                try:
                    response = client.post("/v1/predictions", json=body, headers=headers)
                except httpx.TransportError:
                    return  # the server is gone: this request was never answered
                if response.status_code == 200:
                    with self._lock:
                        self.answered.add(response.json()["event_id"])
                else:
                    self.errors.append(f"{response.status_code} {response.text[:200]}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, answered: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.answered) < answered:
            assert not self.errors, self.errors[:3]
            assert time.monotonic() < deadline, f"only {len(self.answered)} answers"
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def stored_event_ids(settings: Settings) -> tuple[set[str], int]:
    """Start a fresh data plane on the dead server's HOME (replaying its spool); what is in SQL."""
    storage = build_storage(settings)
    try:
        storage.start()  # replays spool files the dead process left behind
        assert storage.recorder.drain(timeout_s=60)
        with storage.engine.connect() as connection:
            ids = {
                str(row[0]) for row in connection.execute(text("SELECT event_id FROM predictions"))
            }
            count = connection.execute(text("SELECT count(*) FROM predictions")).scalar_one()
        return {str(uuid.UUID(i)) for i in ids}, int(count)
    finally:
        storage.stop(timeout_s=5)
        storage.close()


def prepare(settings: Settings, bodies: list[dict[str, Any]]) -> dict[str, str]:
    storage = build_storage(settings)
    try:
        storage.upgrade()
        return {u: storage.create_device_key(u).plaintext for u in {b["user_id"] for b in bodies}}
    finally:
        storage.close()


@pytest.mark.slow
def test_sigkill_under_load_loses_no_answered_prediction(
    tmp_path: Path, trained_registry: TrainedRegistry
) -> None:
    settings = trained_registry.settings(tmp_path / "home")
    bodies = request_bodies(trained_registry.live.iloc[:200])
    keys = prepare(settings, bodies)

    with served(settings) as server, Load(server.url, bodies, keys.__getitem__) as load:  # type: ignore[attr-defined]
        load.wait_for(answered=400)
        time.sleep(0.137)  # not on a round number of anything: "at any moment"
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    assert not load.errors, load.errors[:3]
    answered = set(load.answered)
    assert len(answered) >= 400

    stored, rows = stored_event_ids(settings)
    lost = answered - stored
    assert not lost, f"{len(lost)} of {len(answered)} answered predictions were lost"
    assert rows == len(stored)  # each stored once


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_while_spooling_loses_no_answered_prediction(
    tmp_path: Path, trained_registry: TrainedRegistry, postgres_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, url = postgres_proxy
    settings = trained_registry.settings(tmp_path / "home", database_url=url)
    bodies = request_bodies(trained_registry.live.iloc[:200])
    keys = prepare(settings, bodies)

    with served(settings, database_url=url) as server:
        # Every device's key is verified (and cached) while the DB is up: the outage must hit
        # recording, which is what this test is about.
        with Load(server.url, bodies, keys.__getitem__) as warm:  # type: ignore[attr-defined]
            warm.wait_for(answered=300)
        with Load(server.url, bodies, keys.__getitem__) as load:  # type: ignore[attr-defined]
            load.wait_for(answered=100)
            proxy.stop()  # the DB is unreachable: answers now go to the fsync'd spool
            load.wait_for(answered=len(load.answered) + 400)
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        assert not load.errors, load.errors[:3]
    spool_files = list(settings.spool_dir.glob("*.jsonl"))
    assert spool_files, "the outage never reached the spool"

    proxy.start()
    stored, rows = stored_event_ids(settings)
    answered = warm.answered | load.answered
    lost = answered - stored
    assert not lost, f"{len(lost)} of {len(answered)} answered predictions were lost"
    assert rows == len(stored)
    assert not list(settings.spool_dir.glob("*.jsonl")), "the spool was not fully replayed"


SLOW_BLOB_S = 2.0  # added to every chunk to and from the blob store while a batch is in flight


def claimed_batches_left(settings: Settings) -> int:
    """Outbox rows claimed into a batch that was never marked done (its flusher died)."""
    storage = build_storage(settings)
    try:
        with storage.engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM outbox "
                        "WHERE batch_id IS NOT NULL AND status = 'pending'"
                    )
                ).scalar_one()
            )
    finally:
        storage.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.azurite
def test_process_group_killed_mid_flush_then_restarted_stores_each_event_once(
    tmp_path: Path,
    trained_registry: TrainedRegistry,
    postgres_url: str,
    azurite_proxy: tuple[TcpProxy, str],
    blob_container: str,
) -> None:
    proxy, blob = azurite_proxy
    settings = trained_registry.settings(
        tmp_path / "home",
        database_url=postgres_url,
        azure_storage_connection_string=blob,
        blob_container=blob_container,
        blob_flush_max_records=50,
        blob_flush_max_age_s=0.3,
        # The restarted process retries the dead one's claimed batch once this has passed.
        outbox_lease_s=1.0,
        rate_limit_per_s=100_000,
        rate_limit_burst=100_000,
    )
    bodies = request_bodies(trained_registry.live.iloc[:200])
    keys = prepare(settings, bodies)
    env = settings_env(settings) | field_env(
        settings, ["blob_flush_max_records", "blob_flush_max_age_s", "outbox_lease_s"]
    )
    sent: list[tuple[dict[str, Any], dict[str, Any] | None]] = []  # (body, first answer)
    errors: list[str] = []
    lock = threading.Lock()

    def phone(url: str, index: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            for n in range(index, 10**6, CLIENTS):
                body = dict(bodies[n % len(bodies)], event_id=str(uuid.uuid4()))
                headers = {"Authorization": f"Bearer {keys[body['user_id']]}"}
                try:
                    r = http.post("/v1/predictions", json=body, headers=headers)
                except httpx.TransportError:
                    with lock:
                        sent.append((body, None))  # killed: never answered
                    return
                with lock:
                    sent.append((body, r.json() if r.status_code == 200 else None))
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                time.sleep(0.05)

    with served(settings, postgres_url, extra_env=env, own_group=True) as server:
        url = server.url  # type: ignore[attr-defined]
        phones = [threading.Thread(target=phone, args=(url, i)) for i in range(CLIENTS)]
        for thread in phones:
            thread.start()
        wait_until(lambda: len(sent) >= 100, timeout_s=60)
        proxy.slow(SLOW_BLOB_S)
        # A batch is on its way to the blob store (after the shipper process started).
        wait_until(lambda: proxy.delayed_chunks > 0, timeout_s=90)
        assert proxy.delayed_chunks > 0, "no feature batch was written while the store was slow"
        os.killpg(server.pid, signal.SIGKILL)  # API, recorder child and shipper at once
        server.wait(timeout=30)
        for thread in phones:
            thread.join(timeout=30)
    proxy.start()
    assert not errors, errors[:3]
    assert claimed_batches_left(settings) > 0, "the kill did not interrupt a flush"
    unanswered = sum(1 for _, answer in sent if answer is None)

    # A new API process on the same HOME, database and container; each phone sends again what
    # it holds, answered or not, with the same event_id (the reference client re-sends the
    # unanswered ones; the answered ones check that the first answer stands).
    with LiveServer(create_app(settings)) as restarted, httpx.Client(timeout=10) as http:

        def resend(item: tuple[dict[str, Any], dict[str, Any] | None]) -> tuple[int, Any]:
            body, _ = item
            headers = {"Authorization": f"Bearer {keys[body['user_id']]}"}
            r = http.post(f"{restarted.url}/v1/predictions", json=body, headers=headers)
            return r.status_code, r.json()

        with ThreadPoolExecutor(CLIENTS) as pool:
            again = list(pool.map(resend, sent))
    assert [status for status, _ in again if status != 200] == []
    changed = [
        (first, then)
        for (_, first), (_, then) in zip(sent, again, strict=True)
        if first is not None and first != then
    ]
    assert not changed, f"{len(changed)} answers changed, e.g. {changed[0]}"
    print(f"\n{len(sent)} events sent, {unanswered} unanswered at the kill")
    assert_settled_exactly_once(settings, [body["event_id"] for body, _ in sent])
