"""Zero-downtime proof, against ``fatigue-guard serve --workers 2``.

Constant, bounded concurrent load runs while the production alias moves A -> B -> C (C fails
its golden check and must be refused) -> D. Asserted over every request of the run:

- none failed, and none answered while a swap was under way took longer than the 200 ms
  server-side budget;
- each load client keeps one connection, so it stays on one worker process: the versions it
  sees never go back (in-flight requests finish on their model, swaps are atomic);
- every worker process (told apart by the ``x-served-by-pid`` header) serves B and then D
  within one poll interval (plus load-and-check time) of the move, and keeps B while C is
  refused, showing the refusal in its ``/readyz``.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fatigue_guard.demo import request_bodies
from fatigue_guard.storage.factory import build_storage
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.services import free_port
from tests.serving.conftest import ADMIN_TOKEN
from tests.serving.lifecycle_helpers import (
    AliasMover,
    clone_version,
    private_registry_uri,
    serve_process,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WORKERS = 2
POLL_S = 2.0
LOAD_ALLOWANCE_S = 1.0  # download + build + warm + check of a version, measured ~0.2 s
CLIENTS = 6
USERS = 12
THINK_S = 0.01  # bounded load: about CLIENTS / (THINK_S + latency) requests per second
MAX_REQUESTS_PER_CLIENT = 4000
MAX_RUN_S = 60.0
BUDGET_MS = 200.0
PROBER = -1  # client index of the fresh-connection prober (it hops processes: no order check)


@dataclass(frozen=True)
class Answer:
    client: int
    sent: float
    ms: float  # as the client saw it
    server_ms: float  # the server's own share (Server-Timing header)
    status: int
    version: str | None
    pid: str | None


class Load:
    """CLIENTS threads, each with one keep-alive connection, plus a fresh-connection prober."""

    def __init__(self, url: str, bodies: list[dict], keys: dict[str, str]) -> None:
        self.url, self.bodies, self.keys = url, bodies, keys
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)
        ]
        self._threads.append(threading.Thread(target=self._prober, daemon=True))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def _client(self, index: int) -> None:
        mine = self.bodies[index::CLIENTS]
        deadline = time.monotonic() + MAX_RUN_S
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for n in range(MAX_REQUESTS_PER_CLIENT):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                body = {**mine[n % len(mine)], "event_id": str(uuid.uuid4())}
                headers = {"Authorization": f"Bearer {self.keys[body['user_id']]}"}
                self._post(index, client, body, headers)
                time.sleep(THINK_S)

    def _prober(self) -> None:
        """A new connection per request, so every worker process gets asked, not just some."""
        fresh = httpx.Limits(max_keepalive_connections=0)
        deadline = time.monotonic() + MAX_RUN_S
        with httpx.Client(base_url=self.url, timeout=10, limits=fresh) as client:
            n = 0
            while not self.stop.is_set() and time.monotonic() < deadline:
                body = {**self.bodies[n % len(self.bodies)], "event_id": str(uuid.uuid4())}
                headers = {"Authorization": f"Bearer {self.keys[body['user_id']]}"}
                n += 1
                self._post(PROBER, client, body, headers)
                time.sleep(0.02)

    def _post(self, index: int, client: httpx.Client, body: dict, headers: dict) -> None:
        sent = time.monotonic()
        try:
            response = client.post("/v1/predictions", json=body, headers=headers)
        except httpx.HTTPError:
            self._record(Answer(index, sent, 0.0, 0.0, 0, None, None))
            return
        ms = (time.monotonic() - sent) * 1000
        ok = response.status_code == 200
        version = response.json()["model"]["version"] if ok else None
        pid = response.headers.get("x-served-by-pid")
        timing = response.headers.get("server-timing", "app;dur=nan")
        server_ms = float(timing.partition("dur=")[2])
        self._record(Answer(index, sent, ms, server_ms, response.status_code, version, pid))

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)


def wait_converged(load: Load, pids: set[str], version: str, since: float) -> dict[str, float]:
    """Per pid: seconds from the alias move until its answers (sent after it) carry ``version``."""
    deadline = since + POLL_S + LOAD_ALLOWANCE_S + 5
    while time.monotonic() < deadline:
        first: dict[str, float] = {}
        for a in load.snapshot():
            if a.sent >= since and a.version == version and a.pid in pids:
                first.setdefault(a.pid, a.sent - since)
        if set(first) == pids:
            return first
        time.sleep(0.05)
    raise AssertionError(f"not every process served v{version} in time")


def test_alias_moves_under_load_with_zero_failed_or_slow_requests(
    postgres_url: str, tmp_path: Path, trained_registry: TrainedRegistry
) -> None:
    uri = private_registry_uri(trained_registry, tmp_path / "registry")
    # Several worker processes write predictions at once: that is PostgreSQL's job. (SQLite
    # takes one writer at a time across processes, so one worker's commit waits on another's.)
    settings = trained_registry.settings(
        tmp_path / "home",
        mlflow_tracking_uri=uri,
        admin_token=ADMIN_TOKEN,
        database_url=postgres_url,
    )
    storage = build_storage(settings)
    storage.upgrade()
    # A few users: each key's first use per process pays a deliberately slow hash check.
    live = trained_registry.live
    bodies = request_bodies(live[live["user_id"].isin(live["user_id"].unique()[:USERS])])
    keys = {u: storage.create_device_key(u).plaintext for u in {b["user_id"] for b in bodies}}
    storage.close()
    a = trained_registry.version
    b = clone_version(settings, a)
    c = clone_version(settings, a, golden_offset=0.05)  # must be refused
    d = clone_version(settings, a)
    convergence: dict[str, dict[str, float]] = {}
    moves: dict[str, float] = {}
    with (
        AliasMover(settings) as mover,
        serve_process(settings, free_port(), workers=WORKERS, poll_s=POLL_S) as url,
        Load(url, bodies, keys) as load,
    ):
        deadline = time.monotonic() + 15
        while len({x.pid for x in load.snapshot() if x.pid}) < WORKERS:
            assert time.monotonic() < deadline, "did not reach every worker process"
            time.sleep(0.1)
        pids = {x.pid for x in load.snapshot() if x.pid}
        for version in (b, c, d):
            moved = moves[version] = mover.move(version)
            if version == c:
                time.sleep(POLL_S + LOAD_ALLOWANCE_S + 0.5)  # every process has looked at c
                refused = {p: r for p, r in _readyz_by_pid(url, pids).items() if r["refused"]}
                assert set(refused) == pids
                assert all(r["version"] == b for r in refused.values())
                assert all(r["refused"][0]["version"] == c for r in refused.values())
                continue
            convergence[version] = wait_converged(load, pids, version, moved)
        time.sleep(1.0)
        ended = time.monotonic()
    answers = load.snapshot()
    predictions = [x for x in answers if x.client != PROBER]
    failed = [x for x in answers if x.status != 200]
    # The budget is the server's: each answer is judged on its own Server-Timing, which leaves
    # out the test process's client threads competing for this machine's two cores. What a swap
    # could cost (a model load holding the GIL, a lock on the slot) happens within a poll
    # interval plus the load allowance after a move: those windows are judged; a slow answer
    # outside them is the shared machine, reported but not a failure of the swap.
    swap_windows = [(at, at + POLL_S + LOAD_ALLOWANCE_S) for at in moves.values()]
    slow = [x for x in answers if x.server_ms > BUDGET_MS]
    slow_in_swaps = [x for x in slow if any(lo <= x.sent <= hi for lo, hi in swap_windows)]
    print(
        f"\n{len(predictions)} + {len(answers) - len(predictions)} probe predictions, "
        f"{len(failed)} failed, {len(slow)} over {BUDGET_MS:g} ms on the server "
        f"({len(slow_in_swaps)} within a swap window), max {max(x.ms for x in answers):.1f} ms "
        f"client-side; convergence (s after alias move) {convergence}"
    )
    assert len(predictions) > 500
    assert failed == []
    assert slow_in_swaps == [], _describe(slow_in_swaps, moves)
    assert {x.version for x in predictions} <= {a, b, d}  # c never answered
    for client in range(CLIENTS):
        seen = [
            int(x.version) for x in sorted(predictions, key=lambda x: x.sent) if x.client == client
        ]
        assert seen == sorted(seen), f"client {client} saw versions go back"
    # After one poll interval (+ load time), every answer of every process is the new version,
    # until the next move that actually changes it (c is refused, so b lasts until d).
    windows = {b: (moves[b], moves[d]), d: (moves[d], ended)}
    for version, (start, end) in windows.items():
        assert max(convergence[version].values()) <= POLL_S + LOAD_ALLOWANCE_S
        settled = start + POLL_S + LOAD_ALLOWANCE_S
        stale = [x for x in answers if settled <= x.sent < end and x.version != version]
        assert stale == [], (version, stale[:3])


def _describe(slow: list[Answer], moves: dict[str, float]) -> str:
    """Slow requests with their send times relative to each alias move (what caused them?)."""
    lines = [
        f"{x.ms:.0f} ms, pid {x.pid}, client {x.client}, sent "
        + ", ".join(f"{x.sent - at:+.2f} s from the move to v{v}" for v, at in moves.items())
        for x in sorted(slow, key=lambda x: x.sent)[:20]
    ]
    return f"{len(slow)} requests over {BUDGET_MS:g} ms:\n" + "\n".join(lines)


def _readyz_by_pid(url: str, pids: set[str]) -> dict[str, dict]:
    """The /readyz model details of every worker (fresh connections until each answered)."""
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + 10
    while set(seen) != pids and time.monotonic() < deadline:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # the details need the token
        model = httpx.get(f"{url}/readyz", headers=admin, timeout=10).json()["checks"]["model"]
        seen[str(model["pid"])] = model
    return seen
