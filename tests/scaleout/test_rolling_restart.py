"""A rolling restart under load fails no request and loses or doubles no record.

Two ``fatigue-guard serve`` processes share one PostgreSQL database and one Azurite container,
behind a tiny load balancer in this test: requests go round-robin to the processes in rotation;
one is retried on the other process only when its connection was refused (nothing was sent, as
a load balancer retries), and a process leaves the rotation once its /readyz answers 503. Under
steady load each process in turn gets SIGTERM and a replacement is started (a rolling update).

Asserted: no request failed; each stopped process exited 0 within ``shutdown_grace_s``; its
/readyz answered 503 before its port closed; and once all have stopped, every answered event_id
is stored exactly once in SQL and exactly once in the blob feature store (the stopping
processes shipped what they held).
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from fatigue_guard.config import Settings
from fatigue_guard.demo import request_bodies, settings_env, wait_ready
from fatigue_guard.serving.shutdown import Shutdown
from fatigue_guard.storage.factory import build_storage
from tests.fixtures.exactly_once import assert_stored_exactly_once
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.azurite]

GRACE_S = 12.0  # short, to keep the test short: a 3 s drain delay
CLIENTS = 4
THINK_S = 0.02
PROBE_S = 0.05  # how often the load balancer reads each process's /readyz
SETTLE_S = 6.0  # load on a new set of processes before the next step of the update


@dataclass
class Api:
    """One ``fatigue-guard serve`` process and what the load balancer saw of it."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    answered: int = 0
    terminated_at: float | None = None
    not_ready_at: float | None = None  # first 503 from /readyz after SIGTERM
    closed_at: float | None = None  # first refused connection after SIGTERM
    exited_after_s: float | None = None
    probe: threading.Thread | None = field(default=None, repr=False)


def start_api(settings: Settings, name: str) -> Api:
    env = settings_env(settings)
    env.update(
        FATIGUE_GUARD_SHUTDOWN_GRACE_S=str(GRACE_S),
        FATIGUE_GUARD_RATE_LIMIT_PER_S="100000",
        FATIGUE_GUARD_RATE_LIMIT_BURST="100000",
        FATIGUE_GUARD_MONITOR_ENABLED="false",
        # Every process ships a batch (and so has started its shipper process) before it is
        # stopped: starting that process at the stop instead takes seconds of imports.
        FATIGUE_GUARD_BLOB_FLUSH_MAX_AGE_S=str(SETTLE_S / 3),
    )
    port = free_port()
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    log = settings.home_dir / "serve.log"
    command = [sys.executable, "-m", "fatigue_guard.cli.main", "serve", "--port", str(port)]
    command += ["--log-level", "info"]
    with log.open("ab") as out:  # a file, not a pipe nobody reads
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Api(name, f"http://127.0.0.1:{port}", proc, log)


class LoadBalancer:
    """Round-robin over the processes in rotation, with a load balancer's retry and probes."""

    def __init__(self, bodies: list[dict[str, Any]], keys: dict[str, str]) -> None:
        # Processes are added before the load starts (``with``) and while it runs.
        self.bodies, self.keys = bodies, keys
        self.rotation: list[Api] = []
        self.answered: list[str] = []
        self.failures: list[str] = []
        self.retries = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._clients = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def add(self, api: Api) -> None:
        """Put a ready process into rotation; its /readyz is watched from now on."""
        with self._lock:
            self.rotation.append(api)
        api.probe = threading.Thread(target=self._probe, args=(api,), daemon=True)
        api.probe.start()

    def _probe(self, api: Api) -> None:
        # A fresh connection each time: the port closing shows as a refused connection.
        while api.closed_at is None:
            try:
                status = httpx.get(f"{api.url}/readyz", timeout=2).status_code
            except httpx.ConnectError:
                if api.terminated_at is not None:
                    api.closed_at = time.monotonic()
                status = 0
            except httpx.TransportError:
                status = 0
            if status == 503:  # not a timeout: a busy process stays in rotation
                with self._lock:
                    if api in self.rotation:
                        self.rotation.remove(api)
                if api.terminated_at is not None and api.not_ready_at is None:
                    api.not_ready_at = time.monotonic()
            time.sleep(PROBE_S)

    def _pick(self, avoid: Api | None = None) -> Api | None:
        with self._lock:
            choices = [api for api in self.rotation if api is not avoid]
            return choices[next(self._turn) % len(choices)] if choices else None

    def _client(self, index: int) -> None:
        with httpx.Client(timeout=10) as http:
            for n in itertools.count(index, CLIENTS):
                if self.stop.is_set():
                    return
                body = {**self.bodies[n % len(self.bodies)], "event_id": str(uuid.uuid4())}
                headers = {"Authorization": f"Bearer {self.keys[body['user_id']]}"}
                api = self._pick()
                while api is not None:
                    try:
                        r = http.post(f"{api.url}/v1/predictions", json=body, headers=headers)
                    except httpx.ConnectError:
                        # Refused before anything was sent: the one retry a load balancer makes.
                        self.retries += 1
                        api = self._pick(avoid=api)
                        continue
                    except httpx.HTTPError as exc:
                        self.failures.append(f"{api.name}: {type(exc).__name__}: {exc}")
                    else:
                        if r.status_code == 200:
                            with self._lock:
                                self.answered.append(body["event_id"])
                                api.answered += 1
                        else:
                            self.failures.append(f"{api.name}: {r.status_code} {r.text[:200]}")
                    break
                else:
                    self.failures.append("no process in rotation")
                time.sleep(THINK_S)

    def __enter__(self) -> LoadBalancer:
        for thread in self._clients:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._clients:
            thread.join(timeout=30)


def send_sigterm(api: Api) -> None:
    api.terminated_at = time.monotonic()
    api.proc.send_signal(signal.SIGTERM)


def terminate(api: Api) -> None:
    """SIGTERM (unless sent), then wait for the exit (the probe notes the 503 and the port)."""
    if api.terminated_at is None:
        send_sigterm(api)
    assert api.terminated_at is not None
    try:
        api.proc.wait(timeout=GRACE_S + 10)
    except subprocess.TimeoutExpired:
        api.proc.kill()
        api.proc.wait(timeout=10)
    api.exited_after_s = time.monotonic() - api.terminated_at
    if api.probe is not None:
        api.probe.join(timeout=5)


def test_rolling_restart_under_load_fails_no_request_and_records_land_once(
    tmp_path: Path, trained_registry: TrainedRegistry, postgres_url: str, azurite: str
) -> None:
    container = f"features{uuid.uuid4().hex[:12]}"

    def settings_for(name: str) -> Settings:
        return trained_registry.settings(
            tmp_path / name,
            database_url=postgres_url,
            azure_storage_connection_string=azurite,
            blob_container=container,
        )

    storage = build_storage(settings_for("setup"))
    storage.upgrade()
    live = trained_registry.live
    bodies = request_bodies(live[live["user_id"].isin(live["user_id"].unique()[:8])])
    keys = {u: storage.create_device_key(u).plaintext for u in {b["user_id"] for b in bodies}}
    storage.close()

    apis: list[Api] = []

    def launch(name: str) -> Api:
        api = start_api(settings_for(name), name)
        apis.append(api)
        return api

    def wait(api: Api) -> Api:
        wait_ready(api.url, api.proc, 90, api.log)
        return api

    try:
        first, second = launch("a"), launch("b")
        lb = LoadBalancer(bodies, keys)
        lb.add(wait(first))
        lb.add(wait(second))
        with lb:
            time.sleep(SETTLE_S)
            # The rolling update: stop one and start its replacement, then the other.
            for old, name in ((first, "c"), (second, "d")):
                new = launch(name)
                terminate(old)
                lb.add(wait(new))
                time.sleep(SETTLE_S)
        for api in apis[2:]:
            send_sigterm(api)
        for api in apis[2:]:
            terminate(api)
    finally:
        for api in apis:
            if api.proc.poll() is None:
                api.proc.kill()
                api.proc.wait(timeout=10)

    logs = {api.name: api.log.read_text(errors="replace")[-3000:] for api in apis}
    print(f"\nretries: {lb.retries}; per process: { {a.name: a.answered for a in apis} }")
    print({a.name: (a.exited_after_s, a.proc.returncode) for a in apis})
    assert lb.failures == [], lb.failures[:5]
    drain_s = Shutdown(GRACE_S).drain_delay_s
    for api in apis:
        assert api.proc.returncode == 0, f"{api.name} exited {api.proc.returncode}: {logs}"
        assert api.exited_after_s is not None and api.exited_after_s <= GRACE_S, api
        assert api.not_ready_at is not None and api.closed_at is not None, api
        # 503 first, and for about the drain delay while the port still took connections.
        assert api.closed_at - api.not_ready_at >= drain_s / 2, api
    # The old processes served until their replacements had taken over.
    assert all(api.answered > 20 for api in apis[:2])
    assert all(api.answered > 0 for api in apis[2:])
    answered = lb.answered
    assert len(answered) == len(set(answered)) > 200

    reader = build_storage(settings_for("reader"))
    try:
        # No waiting: the processes shipped their outbox before they exited.
        assert_stored_exactly_once(reader, answered)
    finally:
        reader.close()
