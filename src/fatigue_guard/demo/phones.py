"""The demo's phones: every simulated person is a :class:`FatigueClient` with its own folder.

Like :mod:`fatigue_guard.client.devices`, a share of the phones loses the network for stretches
(cut inside the phone's HTTP transport, so the client takes its real offline path: the edge
model, the durable queue, a sync when the network returns), and some moments get feedback. On
top of that the demo keeps every answer it saw - who served it, which model version, the alert,
the simulated truth, the latency - because its table is made of them.

A phone's client is opened for a phase and closed after it, as an app is started and stopped:
each open client holds its own ONNX Runtime session, and a few hundred at once would cost
gigabytes.

A request counts as failed when the server should have answered and did not: the phone was
online and still had to fall back to its edge model (an error, a timeout, a 5xx or a 429), or
the call raised, or a sync or a feedback report was not taken.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from fatigue_guard.client import EdgeModelUnavailable, FatigueClient, SyncReport
from fatigue_guard.contract.features import FEATURE_NAMES, LABEL_COLUMN, SEGMENT_COLUMNS


class SwitchableTransport(httpx.BaseTransport):
    """A real HTTP transport with an airplane-mode switch, sharing one TLS context.

    Building a TLS context reads the whole CA bundle (tens of milliseconds of CPU); the demo
    opens phones by the thousand, so they share one.
    """

    _tls: ssl.SSLContext | None = None

    def __init__(self) -> None:
        if SwitchableTransport._tls is None:
            SwitchableTransport._tls = httpx.create_ssl_context()
        self._inner = httpx.HTTPTransport(verify=SwitchableTransport._tls)
        self.online = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.online:
            raise httpx.ConnectError("simulated: phone offline", request=request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@dataclass(frozen=True)
class Answer:
    """One moment a phone asked about, and what it got."""

    sent: float  # time.time() when the phone asked
    at: float  # time.time() when the answer arrived
    phase: str
    user: str
    truth: bool
    online: bool
    served_by: str | None  # "server" or "edge"; None when the phone got no answer
    version: str | None
    alert: bool | None
    latency_ms: float | None  # server answers only: what the phone waited
    failed: bool


@dataclass
class Traffic:
    """What the phones of one phase did."""

    phase: str
    phones: int = 0
    offline_phones: int = 0
    answers: list[Answer] = field(default_factory=list)
    synced: int = 0  # edge answers the server accepted on sync
    sync_duplicates: int = 0
    sync_failures: int = 0  # rejected or conflicting events, syncs that could not finish
    feedback: int = 0
    feedback_failures: int = 0
    no_edge_model: int = 0
    refreshes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(a.failed for a in self.answers) + self.sync_failures + self.feedback_failures

    @property
    def edge_answers(self) -> int:
        return sum(a.served_by == "edge" for a in self.answers)

    def add(self, other: Traffic) -> None:
        self.answers.extend(other.answers)
        for name in (
            "synced",
            "sync_duplicates",
            "sync_failures",
            "feedback",
            "feedback_failures",
            "no_edge_model",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.refreshes.update(other.refreshes)


@dataclass(frozen=True)
class Refresh:
    user: str
    before: str | None
    after: str | None
    status: str


@dataclass(frozen=True)
class PhoneConfig:
    offline_share: float = 0.25
    offline_period: int = 5
    feedback_share: float = 0.3
    concurrency: int = 4
    seed: int = 0


class Fleet:
    """Every person of the cohort as a phone, keyed in the API's data plane."""

    def __init__(
        self,
        base_url: str,
        keys: Mapping[str, str],
        cohort: pd.DataFrame,
        root: Path,
        config: PhoneConfig,
    ) -> None:
        self.base_url = base_url
        self.keys = dict(keys)
        self.root = root
        self.config = config
        users = sorted(self.keys)
        # Simulated behaviour, not secrets.
        rng = random.Random(config.seed)  # nosec B311
        self.offline = set(rng.sample(users, round(len(users) * config.offline_share)))
        first = cohort.drop_duplicates("user_id").set_index("user_id")
        # What the phone says it is: the monitor attributes drift to these segment values.
        self.client_info = {
            user: {c: str(first.at[user, c]) for c in SEGMENT_COLUMNS if c in first.columns}
            for user in users
        }

    def open(self, user: str) -> tuple[FatigueClient, SwitchableTransport]:
        transport = SwitchableTransport()
        client = FatigueClient(
            self.base_url,
            self.keys[user],
            self.root / user,
            user_id=user,
            transport=transport,
            client_info=self.client_info[user],
        )
        return client, transport

    @contextmanager
    def phone(self, user: str) -> Iterator[tuple[FatigueClient, SwitchableTransport]]:
        client, transport = self.open(user)
        try:
            yield client, transport
        finally:
            client.close()
            transport.close()

    def _rng(self, user: str, phase: str) -> random.Random:
        return random.Random(zlib.crc32(f"{self.config.seed}/{phase}/{user}".encode()))  # nosec B311

    # -- a phase: every phone sends its moments of those days ------------------------------

    def run(self, phase: str, rows: pd.DataFrame, *, feedback: bool = True) -> Traffic:
        started = time.perf_counter()
        groups = {str(u): g.sort_values("measured_at") for u, g in rows.groupby("user_id")}
        users = sorted(groups)
        total = Traffic(
            phase, phones=len(users), offline_phones=len(self.offline.intersection(users))
        )

        def one(user: str) -> Traffic:
            return self._run_phone(phase, user, groups[user], feedback)

        with ThreadPoolExecutor(max(1, self.config.concurrency)) as pool:
            for traffic in pool.map(one, users):
                total.add(traffic)
        total.seconds = time.perf_counter() - started
        return total

    def _run_phone(self, phase: str, user: str, rows: pd.DataFrame, feedback: bool) -> Traffic:
        out = Traffic(phase)
        rng = self._rng(user, phase)
        period = self.config.offline_period
        shift = rng.randrange(2 * period)
        goes_offline = user in self.offline
        with self.phone(user) as (client, transport):
            out.refreshes[client.refresh_model().status] += 1
            for i, row in enumerate(rows.itertuples(index=False)):
                was_online = transport.online
                transport.online = not goes_offline or ((i + shift) // period) % 2 == 0
                if transport.online and not was_online:
                    _count_sync(client.sync(), out)  # back in coverage: the queue goes first
                answer = ask(client, transport, phase, user, row, out)
                if feedback and answer is not None and rng.random() < self.config.feedback_share:
                    sent = client.submit_feedback(answer.event_id, bool(getattr(row, LABEL_COLUMN)))
                    out.feedback += 1
                    # Queued although the phone is online and the server has the event: refused.
                    if sent == "queued" and transport.online and answer.served_by == "server":
                        out.feedback_failures += 1
            transport.online = True
            _count_sync(client.sync(), out)
        return out

    # -- the edge bundle --------------------------------------------------------------------

    def refresh(self, users: list[str]) -> list[Refresh]:
        """Each phone asks for the published edge model, as an app does when it starts."""

        def one(user: str) -> Refresh:
            with self.phone(user) as (client, _):
                before = client.model_version
                result = client.refresh_model()
                return Refresh(user, before, result.model_version, result.status)

        with ThreadPoolExecutor(max(1, self.config.concurrency)) as pool:
            return list(pool.map(one, sorted(users)))


class LiveTraffic:
    """A few always-online phones sending their moments at a steady rate until stopped.

    Their moments go round again if retraining outlasts them (each send is a new event). The
    rate is held low on purpose: the retraining job shares the machine's cores with the API.
    """

    def __init__(self, fleet: Fleet, rows: pd.DataFrame, *, phones: int, rate_per_s: float):
        self.fleet = fleet
        users = sorted(rows["user_id"].astype(str).unique())
        chosen = random.Random(fleet.config.seed).sample(users, min(phones, len(users)))  # nosec B311
        self.rows = {u: rows[rows["user_id"] == u].sort_values("measured_at") for u in chosen}
        self.threads = max(1, min(fleet.config.concurrency, len(chosen)))
        self.interval_s = self.threads / rate_per_s
        self.traffic = Traffic("live", phones=len(chosen))
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        users = sorted(self.rows)
        for i in range(self.threads):
            mine = users[i :: self.threads]
            worker = threading.Thread(
                target=self._work, args=(mine,), name=f"demo-live-{i}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def stop(self) -> Traffic:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
        self._workers.clear()
        return self.traffic

    def first_answer_from(self, version: str) -> Answer | None:
        with self._lock:
            return next((a for a in self.traffic.answers if a.version == version), None)

    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self.traffic.answers)

    def _work(self, users: list[str]) -> None:
        with _open_all(self.fleet, users) as phones:
            queues = {u: list(self.rows[u].itertuples(index=False)) for u in users}
            position = dict.fromkeys(users, 0)
            next_at = time.monotonic()
            while not self._stop.is_set():
                for user in users:
                    if self._stop.is_set():
                        break
                    rows = queues[user]
                    row = rows[position[user] % len(rows)]
                    position[user] += 1
                    client, transport = phones[user]
                    scratch = Traffic("live")
                    ask(client, transport, "live", user, row, scratch)
                    with self._lock:
                        self.traffic.add(scratch)
                    # Behind schedule (a slow answer) means carry on, not a burst to catch up.
                    next_at = max(next_at + self.interval_s, time.monotonic() - self.interval_s)
                    self._stop.wait(max(0.0, next_at - time.monotonic()))


@contextmanager
def _open_all(
    fleet: Fleet, users: list[str]
) -> Iterator[dict[str, tuple[FatigueClient, SwitchableTransport]]]:
    opened: dict[str, tuple[FatigueClient, SwitchableTransport]] = {}
    try:
        for user in users:
            opened[user] = fleet.open(user)
        yield opened
    finally:
        for client, transport in opened.values():
            client.close()
            transport.close()


def ask(
    client: FatigueClient,
    transport: SwitchableTransport,
    phase: str,
    user: str,
    row: Any,
    out: Traffic,
) -> Any:
    """One moment through the client; the answer is recorded in ``out`` and returned."""
    features = {n: _value(getattr(row, n)) for n in FEATURE_NAMES}
    truth = bool(getattr(row, LABEL_COLUMN))
    online = transport.online
    sent, started = time.time(), time.perf_counter()
    try:
        answer = client.predict(features, pd.Timestamp(row.measured_at).to_pydatetime())
    except EdgeModelUnavailable:
        # Offline before its first model download: nothing to show, and not the server's fault.
        out.no_edge_model += 1
        return None
    except Exception:
        out.answers.append(
            Answer(sent, time.time(), phase, user, truth, online, None, None, None, None, True)
        )
        return None
    waited = (time.perf_counter() - started) * 1000
    server = answer.served_by == "server"
    out.answers.append(
        Answer(
            sent=sent,
            at=time.time(),
            phase=phase,
            user=user,
            truth=truth,
            online=online,
            served_by=answer.served_by,
            version=answer.model_version,
            alert=answer.alert,
            latency_ms=waited if server else None,
            failed=online and not server,
        )
    )
    return answer


def _count_sync(report: SyncReport, out: Traffic) -> None:
    out.synced += report.accepted
    out.sync_duplicates += report.duplicates
    out.sync_failures += report.rejected + report.conflicts + report.feedback_rejected
    out.sync_failures += 0 if report.complete else 1


def _value(value: Any) -> float | None:
    # Whole floats pass the contract's integer features (3.0 is accepted as 3).
    return None if value is None or pd.isna(value) else float(value)
