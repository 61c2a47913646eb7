"""Simulated devices on top of the real client: load tests and the demo.

Each simulated user of the cohort simulator becomes one :class:`FatigueClient` with its own data
directory, sending its moments in time order to a running API. A configurable share of devices
goes offline for periods (alternating ``offline_period`` moments online / offline from a random
phase): the network is cut inside the device's httpx transport, so the client takes exactly the
code path it takes on a phone in a tunnel - a connection error, the edge model, the queue - and
syncs when the network comes back. Some moments also get feedback (the cohort's own label), so
live precision / recall can be computed on edge events too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from fatigue_guard.client.client import EdgeModelUnavailable, FatigueClient
from fatigue_guard.contract.features import FEATURE_NAMES, LABEL_COLUMN, SEGMENT_COLUMNS


class SwitchableTransport(httpx.BaseTransport):
    """A real HTTP transport with an airplane-mode switch."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.online = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.online:
            raise httpx.ConnectError("simulated: device offline", request=request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@dataclass(frozen=True)
class DeviceSimConfig:
    offline_share: float = 0.3  # share of devices that lose the network for periods
    offline_period: int = 5  # moments per online / offline period of such a device
    feedback_share: float = 0.2  # share of moments the user reports on
    concurrency: int = 4  # devices running at once (threads)
    seed: int = 0


@dataclass
class DeviceSimSummary:
    devices: int = 0
    offline_devices: int = 0
    predictions: int = 0
    served_by_server: int = 0
    served_by_edge: int = 0
    no_edge_model: int = 0
    synced_accepted: int = 0
    synced_duplicates: int = 0
    synced_rejected: int = 0
    feedback: int = 0
    left_in_queues: int = 0
    errors: int = 0
    seconds: float = 0.0

    def add(self, other: DeviceSimSummary) -> None:
        for f in fields(self):
            if f.name not in ("devices", "seconds"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def run_devices(
    base_url: str,
    cohort: pd.DataFrame,
    keys: dict[str, str],
    data_root: Path,
    config: DeviceSimConfig,
    *,
    progress: Callable[[str], None] | None = None,
) -> DeviceSimSummary:
    """Run every user in ``cohort`` that has a key in ``keys`` as one device; returns totals."""
    # Simulated behaviour, not secrets.
    rng = random.Random(config.seed)  # nosec B311
    users = [u for u in cohort["user_id"].astype(str).unique() if u in keys]
    offline = set(rng.sample(users, round(len(users) * config.offline_share)))
    groups = {str(u): g.sort_values("measured_at") for u, g in cohort.groupby("user_id")}
    seeds = {user: rng.randrange(2**31) for user in users}  # drawn before threads: reproducible
    started = time.perf_counter()
    total = DeviceSimSummary(devices=len(users), offline_devices=len(offline))

    def one(user: str) -> DeviceSimSummary:
        return _run_device(
            base_url,
            keys[user],
            user,
            groups[user],
            data_root / user,
            config,
            goes_offline=user in offline,
            seed=seeds[user],
        )

    with ThreadPoolExecutor(max(1, config.concurrency)) as pool:
        for done, summary in enumerate(pool.map(one, users), start=1):
            total.add(summary)
            if progress and done % max(1, len(users) // 10) == 0:
                progress(f"{done}/{len(users)} devices done")
    total.seconds = time.perf_counter() - started
    return total


def _run_device(
    base_url: str,
    key: str,
    user: str,
    rows: pd.DataFrame,
    data_dir: Path,
    config: DeviceSimConfig,
    *,
    goes_offline: bool,
    seed: int,
) -> DeviceSimSummary:
    # Simulated behaviour, not secrets.
    rng = random.Random(seed)  # nosec B311
    out = DeviceSimSummary()
    transport = SwitchableTransport()
    client = FatigueClient(
        base_url,
        key,
        data_dir,
        user_id=user,
        transport=transport,
        client_info={c: str(rows[c].iloc[0]) for c in SEGMENT_COLUMNS if c in rows.columns},
    )
    phase = rng.randrange(2 * config.offline_period)
    try:
        client.refresh_model()
        for i, row in enumerate(rows.itertuples(index=False)):  # bounded by the cohort's days
            was_online = transport.online
            transport.online = not goes_offline or ((i + phase) // config.offline_period) % 2 == 0
            if transport.online and not was_online:
                _sync_into(client.sync(), out)  # back in coverage: upload the queue first
            features = {n: _value(getattr(row, n)) for n in FEATURE_NAMES}
            try:
                answer = client.predict(features, pd.Timestamp(row.measured_at).to_pydatetime())
            except EdgeModelUnavailable:
                out.no_edge_model += 1
                continue
            except Exception:
                out.errors += 1
                continue
            out.predictions += 1
            if answer.served_by == "edge":
                out.served_by_edge += 1
            else:
                out.served_by_server += 1
            label = getattr(row, LABEL_COLUMN, None)
            if label is not None and not pd.isna(label) and rng.random() < config.feedback_share:
                client.submit_feedback(answer.event_id, bool(label))
                out.feedback += 1
        transport.online = True
        _sync_into(client.sync(), out)
        out.left_in_queues = client.pending().events + client.pending().feedback
    finally:
        client.close()
        transport.close()
    return out


def _sync_into(report: Any, out: DeviceSimSummary) -> None:
    out.synced_accepted += report.accepted
    out.synced_duplicates += report.duplicates
    out.synced_rejected += report.rejected


def _value(value: Any) -> float | None:
    # Whole floats pass the contract's integer features (3.0 is accepted as 3).
    return None if value is None or pd.isna(value) else float(value)
