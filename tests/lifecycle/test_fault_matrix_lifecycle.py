"""Model-lifecycle faults over real HTTP, against a real ``mlflow server``.

- The registry goes away while a promotion is pending: first every request to it hangs, then
  only the artifact downloads are cut mid-file. The API keeps answering with the version it has,
  its ``/readyz`` (admin view), metrics and log say the registry is not answering and why, no
  refusal is recorded against the new version, and it swaps within a poll or two of the
  registry's return.
- ``production`` names versions whose artifacts are broken (a truncated ONNX file, golden
  vectors the model does not reproduce): each is refused once, reported with its cause, and not
  downloaded again at later polls.
- Two promotions run the gate at the same time: they take turns, so the alias, the version tags
  and the ``deployments`` audit rows tell one consistent story, and the API serves its end.

Steady load runs through each test: none of its requests may fail or wait on the registry, and
every answered prediction is stored exactly once (PostgreSQL and the blob store).
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from fatigue_guard.config import Settings
from fatigue_guard.lifecycle.deployments import DeploymentRecorder
from fatigue_guard.lifecycle.gate import PromotionOutcome, promote
from fatigue_guard.lifecycle.wiring import lifecycle_bus
from fatigue_guard.registry import PRODUCTION, configure_mlflow, get_model_by_alias
from fatigue_guard.registry.models import TAG_PREVIOUS
from fatigue_guard.storage.factory import build_storage
from tests.fixtures.exactly_once import assert_stored_exactly_once
from tests.fixtures.mlflow_server import mlflow_server_over_copy
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.services import TcpProxy
from tests.serving.conftest import ADMIN_TOKEN, LiveApi, start_api
from tests.serving.lifecycle_helpers import clone_version, reregister_version, set_production

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

POLL_S = 0.5
LOAD_ALLOWANCE_S = 1.5  # download + build + warm + check of a version on a busy host
# The registry's request timeout here (one poll interval, at least 1 s): a request that waited on
# the registry would take at least that long.
REGISTRY_WAIT_MS = 1000.0
THINK_S = 0.02
EXPERIMENT = "fault-matrix"  # runs made here keep their artifacts behind the server
DOWNLOAD = b"/mlflow-artifacts/artifacts/"  # a file download (a listing asks "artifacts?path=")


class ArtifactCutter(TcpProxy):
    """A :class:`TcpProxy` that can also cut artifact downloads mid-file.

    With :attr:`cut_downloads` set, the answer to a request for an artifact file is reset after
    its first bytes, while every other request is forwarded: the registry answers the alias
    lookup, then the model file breaks off half-way. :attr:`downloads` counts download requests
    seen either way, which shows whether a version was fetched again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.cut_downloads = False
        self.downloads = 0
        self._doomed: set[socket.socket] = set()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:  # type: ignore[override]
        upstream = self.target
        try:
            toward_server = dst.getpeername() == upstream
        except OSError:
            return
        try:
            while data := src.recv(65536):
                if toward_server and DOWNLOAD in data:
                    self.downloads += 1
                    if self.cut_downloads:
                        self._doomed.add(src)
                if not toward_server and dst in self._doomed:
                    dst.sendall(data[:1024])  # the headers and the start of the file
                    for sock in (src, dst):  # then a reset, as a dropped link does
                        with contextlib.suppress(OSError):
                            linger = struct.pack("ii", 1, 0)
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                            sock.close()
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def heal(self) -> None:
        """Forward everything again; connections held by a blackhole are reset, not left hanging."""
        self.cut_downloads = False
        self.reset()
        self.start()


@pytest.fixture(scope="module")
def registry_server(
    trained_registry: TrainedRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with mlflow_server_over_copy(trained_registry, tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture
def cutter(registry_server: str) -> Iterator[ArtifactCutter]:
    host, _, port = registry_server.removeprefix("http://").rpartition(":")
    proxy = ArtifactCutter(host, int(port))
    proxy.start()
    yield proxy
    proxy.stop()


def _settings(registry: TrainedRegistry, home: Path, uri: str, **kw: object) -> Settings:
    return registry.settings(
        home,
        mlflow_tracking_uri=uri,
        mlflow_experiment=EXPERIMENT,
        admin_token=ADMIN_TOKEN,
        blob_flush_max_age_s=0.2,
        model_poll_interval_s=POLL_S,
        **kw,
    )


@pytest.fixture
def operator(trained_registry: TrainedRegistry, registry_server: str, tmp_path: Path) -> Settings:
    """Direct access to the server, never through the proxy; production back on the session's
    version (a test that failed must not leave a broken version for the next)."""
    settings = _settings(trained_registry, tmp_path / "operator", registry_server)
    set_production(settings, trained_registry.version)
    return settings


@pytest.fixture
def live(
    trained_registry: TrainedRegistry,
    cutter: ArtifactCutter,
    operator: Settings,
    postgres_url: str,
    tmp_path: Path,
) -> Iterator[LiveApi]:
    registry = f"http://127.0.0.1:{cutter.port}"
    settings = _settings(trained_registry, tmp_path / "api", registry, database_url=postgres_url)
    yield from start_api(settings, trained_registry)


@dataclass(frozen=True)
class Answer:
    status: int
    server_ms: float
    version: str | None
    event_id: str
    error: str | None = None


class SteadyLoad:
    """One client posting predictions back to back (with a short pause) until stopped."""

    def __init__(self, api: LiveApi) -> None:
        self.bodies = api.bodies(40)
        self.keys = {b["user_id"]: api.key_for(b["user_id"]) for b in self.bodies}
        self.url = api.url
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            n = 0
            while not self._stop.is_set():
                body = {**self.bodies[n % len(self.bodies)], "event_id": str(uuid.uuid4())}
                n += 1
                auth = {"Authorization": f"Bearer {self.keys[body['user_id']]}"}
                try:
                    r = client.post("/v1/predictions", json=body, headers=auth)
                except httpx.HTTPError as exc:
                    self.answers.append(Answer(0, math.nan, None, body["event_id"], repr(exc)))
                    continue
                timing = r.headers.get("server-timing", "app;dur=nan").partition("dur=")[2]
                ok = r.status_code == 200
                version = r.json()["model"]["version"] if ok else None
                error = None if ok else r.text[:300]
                self.answers.append(
                    Answer(r.status_code, float(timing), version, body["event_id"], error)
                )
                time.sleep(THINK_S)

    def last_version(self) -> str | None:
        return self.answers[-1].version if self.answers else None

    def check(self, *, timing: bool = True) -> list[str]:
        """Assert none failed and (``timing``) the answers did not follow the registry's
        slowness; the answered event ids.

        The server shares this process (and its GIL) with the MLflow server and the test on a
        shared 2-core host, so absolute latencies say more about the host than about serving; what
        must hold is that the answers do not wait on the registry (p99 below its timeout).
        """
        answers = list(self.answers)
        assert len(answers) > 20, "the load did not run"
        assert [a for a in answers if a.status != 200] == []
        if timing:
            ms = np.array([a.server_ms for a in answers])
            p50, p99 = np.percentile(ms, [50, 99])
            print(f"{len(ms)} answers, server time p50 {p50:.1f} ms, p99 {p99:.1f} ms")
            assert p99 < REGISTRY_WAIT_MS, f"p99 {p99:.0f} ms follows the registry"
        return [a.event_id for a in answers]


def admin_readyz(api: LiveApi) -> dict:
    with api.admin() as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text  # serving through every fault here
    return response.json()["checks"]


def metrics(api: LiveApi) -> str:
    with api.client() as client:
        return client.get("/metrics").text


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``condition()`` held."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, f"not within {timeout_s} s: {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def assert_recorded_once(api: LiveApi, event_ids: list[str]) -> None:
    # The recorder may still hold the last answers: wait until SQL has them all, then the blobs.
    wait_for(lambda: _sql_rows(api) >= len(event_ids), 10, "answers committed to SQL")
    assert_stored_exactly_once(api.storage, event_ids, blob_wait_s=10)


def _sql_rows(api: LiveApi) -> int:
    with api.storage.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM predictions")).scalar_one())


def test_registry_down_during_a_promotion(
    live: LiveApi, cutter: ArtifactCutter, operator: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    old = admin_readyz(live)["model"]["version"]
    new = clone_version(operator, old)
    with (
        caplog.at_level("WARNING", logger="fatigue_guard.serving.model_slot"),
        SteadyLoad(live) as load,
    ):
        # Every call to the registry hangs (the probe gives up after its timeout).
        cutter.blackhole()
        set_production(operator, new)
        # A look already under way waits out its request timeout (one poll interval, at
        # least 1 s) and one retry; later ones fail at the health probe.
        wait_for(lambda: not admin_readyz(live)["registry"]["ok"], 15, "registry check fails")
        registry = admin_readyz(live)["registry"]
        assert f"127.0.0.1:{cutter.port}" in registry["error"] and registry["down_since"]
        assert "fg_registry_up 0.0" in metrics(live)

        # The registry answers again, but every artifact download breaks off after 1 KB: the
        # new version is known and cannot be fetched. That says nothing against the version.
        cutter.heal()
        cutter.cut_downloads = True
        wait_for(
            lambda: f"fetching v{new}" in (admin_readyz(live)["registry"]["error"] or ""),
            10,
            "a cut download is reported as the registry's fault",
        )
        checks = admin_readyz(live)
        assert "model.onnx" in checks["registry"]["error"]
        assert (checks["model"]["version"], checks["model"]["refused"]) == (old, [])
        assert load.last_version() == old
        assert "fg_registry_up 0.0" in metrics(live)

        cutter.heal()
        waited = wait_for(lambda: load.last_version() == new, 2 * POLL_S + 10, "swapped")
        checks = admin_readyz(live)
        assert checks["registry"] == {"ok": True, "error": None, "down_since": None}
        assert (checks["model"]["version"], checks["model"]["refused"]) == (new, [])
    text_ = metrics(live)
    assert "fg_registry_up 1.0" in text_
    assert f'fg_model_info{{source="registry",version="{new}"}} 1.0' in text_
    assert [line for line in text_.splitlines() if line.startswith("fg_model_refusals")] == []
    logged = [r.getMessage() for r in caplog.records]
    assert sum("model registry unreachable" in m for m in logged) == 1, logged
    assert any("reachable again" in m for m in logged)
    print(f"\nswapped to v{new} {waited:.2f} s after the registry came back (poll {POLL_S} s)")
    assert waited <= 2 * POLL_S + LOAD_ALLOWANCE_S
    assert_recorded_once(live, load.check())


def test_broken_versions_are_refused_once_and_not_fetched_again(
    live: LiveApi, cutter: ArtifactCutter, operator: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    good = admin_readyz(live)["model"]["version"]
    truncated = clone_version(operator, good, tamper_onnx=lambda onnx: onnx[: len(onnx) // 2])
    nonsense = clone_version(operator, good, golden_offset=0.05)
    with (
        caplog.at_level("WARNING", logger="fatigue_guard.serving.model_slot"),
        SteadyLoad(live) as load,
    ):
        for bad, cause in ((truncated, "failed to load"), (nonsense, "golden")):
            set_production(operator, bad)
            wait_for(
                lambda bad=bad: any(
                    r["version"] == bad for r in admin_readyz(live)["model"]["refused"]
                ),
                10,
                f"v{bad} refused",
            )
            fetched = cutter.downloads
            time.sleep(2 * POLL_S)  # later polls find the alias still on the refused version
            assert cutter.downloads == fetched, "a refused version was downloaded again"
            model = admin_readyz(live)["model"]
            assert model["version"] == good
            refusal = next(r for r in model["refused"] if r["version"] == bad)
            assert cause in refusal["reason"]
            assert f'fg_model_refusals_total{{version="{bad}"}} 1.0' in metrics(live)
            assert load.last_version() == good
    logged = [r.getMessage() for r in caplog.records]
    for bad in (truncated, nonsense):
        assert sum(f"REFUSED model version {bad}," in m for m in logged) == 1, logged
    assert 'fg_model_loads_total{outcome="refused"} 2.0' in metrics(live)
    assert_recorded_once(live, load.check())


def test_two_promotions_at_once_take_turns(live: LiveApi, operator: Settings) -> None:
    before = admin_readyz(live)["model"]["version"]
    # The promoters share the API's PostgreSQL database: the lock and the audit trail live there.
    gate = operator.model_copy(update={"database_url": live.settings.database_url})
    storage = build_storage(gate)
    # New versions of the same run: the gate and the API need nothing else from them.
    candidates = [reregister_version(gate, before) for _ in range(2)]
    start = threading.Barrier(len(candidates))
    outcomes: dict[str, PromotionOutcome | Exception] = {}

    def promote_one(version: str) -> None:
        bus = lifecycle_bus(gate, audit=DeploymentRecorder(storage, gate), publish_edge=False)
        start.wait()
        try:
            outcomes[version] = promote(gate, version, actor="test", reason="race", bus=bus)
        except Exception as exc:  # shown by the assertion below
            outcomes[version] = exc

    with SteadyLoad(live) as load:
        threads = [threading.Thread(target=promote_one, args=(v,)) for v in candidates]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert set(outcomes) == set(candidates)
        for outcome in outcomes.values():  # identical models: each passes against the other
            assert isinstance(outcome, PromotionOutcome) and outcome.promoted, outcome
        with storage.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT from_version, to_version FROM deployments ORDER BY id")
            ).all()
        winner = get_model_by_alias(gate, PRODUCTION)
        assert winner is not None
        # Each promotion judged against what the one before it left: one chain, no fork.
        assert len(rows) == len(candidates)
        assert rows[0][0] == before
        assert [r[0] for r in rows[1:]] == [r[1] for r in rows[:-1]]
        assert sorted(r[1] for r in rows) == sorted(candidates)
        assert rows[-1][1] == winner.version
        tags = configure_mlflow(gate).get_model_version(gate.registered_model_name, winner.version)
        assert tags.tags[TAG_PREVIOUS] == rows[-1][0]
        wait_for(lambda: load.last_version() == winner.version, 2 * POLL_S + 10, "API follows")
    storage.close()
    assert admin_readyz(live)["model"]["version"] == winner.version
    # The two promotions ran in this process, beside the API: its timings say little here.
    assert_recorded_once(live, load.check(timing=False))
