"""The end-to-end demo: simulate -> train -> register -> serve -> devices over HTTP -> summary.

Runs on the embedded defaults only (SQLite, local blob folder, local MLflow store) in a fresh
folder under HOME, so it needs nothing started by hand and never touches other state.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURE_NAMES, SEGMENT_COLUMNS


@dataclass
class DemoConfig:
    users: int = 1200
    days: int = 30
    live_days: int = 7  # the last days are not trained on: devices send them as live traffic
    requests: int = 2000
    concurrency: int = 8
    seed: int = 7
    search_budget_s: float = 20.0


@dataclass
class DemoSummary:
    home: Path
    rows: dict[str, Any] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_bodies(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Contract-format rows -> ``POST /v1/predictions`` bodies (what a device sends)."""
    features = frame.loc[:, list(FEATURE_NAMES)].astype("object")
    features = features.where(features.notna(), None)
    bodies = []
    for row, feats in zip(
        frame.itertuples(index=False), features.to_dict(orient="records"), strict=True
    ):
        client = {c: getattr(row, c, None) for c in SEGMENT_COLUMNS}
        bodies.append(
            {
                "event_id": str(row.event_id),
                "user_id": str(row.user_id),
                "measured_at": pd.Timestamp(row.measured_at).isoformat(),
                "features": {
                    k: (int(v) if k in ("awakenings", "steps_24h") and v is not None else v)
                    for k, v in feats.items()
                },
                "client": client,
            }
        )
    return bodies


@contextmanager
def running_api(settings: Settings, port: int, *, timeout_s: float = 90.0) -> Iterator[str]:
    """Start ``fatigue-guard serve`` as a child process on ``port``; stop it gracefully after.

    Its output goes to ``serve.log`` under HOME: a pipe nobody reads would fill up and block the
    server's logging.
    """
    env = settings_env(settings)
    log_path = settings.home_dir / "serve.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fatigue_guard.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, proc, timeout_s, log_path)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment for a child process that must see exactly ``settings``."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FATIGUE_GUARD_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["FATIGUE_GUARD_HOME"] = str(settings.home_dir)
    env["FATIGUE_GUARD_BLOB_CONTAINER"] = settings.blob_container
    if settings.database_url:
        env["FATIGUE_GUARD_DATABASE_URL"] = settings.database_url
    if settings.azure_storage_connection_string:
        env["FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING"] = (
            settings.azure_storage_connection_string.get_secret_value()
        )
    if settings.mlflow_tracking_uri:
        env["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    if settings.admin_token:
        env["FATIGUE_GUARD_ADMIN_TOKEN"] = settings.admin_token.get_secret_value()
    env["FATIGUE_GUARD_PRECISION_FLOOR"] = str(settings.precision_floor)
    return env


def wait_ready(
    base_url: str, proc: subprocess.Popen[bytes], timeout_s: float, log_path: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = log_path.read_text(errors="replace") if log_path.exists() else ""
            raise RuntimeError(f"the API exited with code {proc.returncode}:\n{err[-2000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"the API at {base_url} was not ready within {timeout_s:.0f} s")


def send_all(
    base_url: str,
    bodies: list[dict[str, Any]],
    *,
    concurrency: int,
    headers_for: Callable[[dict[str, Any]], dict[str, str]] = lambda body: {},
) -> tuple[np.ndarray, list[dict[str, Any]], int]:
    """Send every body from ``concurrency`` clients; returns latencies (ms), answers, errors."""

    def worker(chunk: list[dict[str, Any]]) -> tuple[list[float], list[dict[str, Any]], int]:
        latencies, answers, errors = [], [], 0
        with httpx.Client(base_url=base_url, timeout=10) as client:
            for body in chunk:
                start = time.perf_counter()
                response = client.post("/v1/predictions", json=body, headers=headers_for(body))
                latencies.append((time.perf_counter() - start) * 1000)
                if response.status_code == 200:
                    answers.append(response.json())
                else:
                    errors += 1
        return latencies, answers, errors

    chunks = [bodies[i::concurrency] for i in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(worker, chunks))
    latencies = np.concatenate([np.asarray(r[0]) for r in results])
    answers = [a for r in results for a in r[1]]
    return latencies, answers, sum(r[2] for r in results)


def split_by_time(cohort: pd.DataFrame, live_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    cutoff = cohort["measured_at"].max().normalize() - timedelta(days=live_days - 1)
    return cohort[cohort["measured_at"] < cutoff], cohort[cohort["measured_at"] >= cutoff]


def prepare_home(base: Settings) -> Settings:
    home = base.home_dir / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return Settings(
        home=home,
        database_url=None,
        azure_storage_connection_string=None,
        mlflow_tracking_uri=None,
        precision_floor=base.precision_floor,
    )


def run_demo(config: DemoConfig, base: Settings, say: Callable[[str], None]) -> DemoSummary:
    """Every step of the product once, on embedded defaults; returns the summary rows."""
    from fatigue_guard.lifecycle.deployments import DeploymentRecorder
    from fatigue_guard.lifecycle.registration import train_and_register
    from fatigue_guard.lifecycle.wiring import lifecycle_bus
    from fatigue_guard.simulation import CohortConfig, simulate_cohort
    from fatigue_guard.storage.factory import build_storage

    settings = prepare_home(base)
    summary = DemoSummary(home=settings.home_dir)
    timings: dict[str, float] = {}

    def step(name: str) -> Callable[[], None]:
        say(name)
        started = time.perf_counter()
        return lambda: timings.__setitem__(name, time.perf_counter() - started)

    done = step(f"simulating {config.users} users x {config.days} days")
    cohort = simulate_cohort(CohortConfig(users=config.users, days=config.days, seed=config.seed))
    train_frame, live_frame = split_by_time(cohort, config.live_days)
    done()

    done = step(f"training on {len(train_frame):,} rows (search budget {config.search_budget_s}s)")
    storage = build_storage(settings)  # first, so the first deployment gets its audit row
    storage.upgrade()
    result = train_and_register(
        settings,
        train_frame,
        seed=config.seed,
        search_budget_s=config.search_budget_s,
        progress=say,
        bus=lifecycle_bus(settings, audit=DeploymentRecorder(storage, settings)),
    )
    done()
    if result.registered is None:
        raise RuntimeError("training registered no model")

    done = step("issuing device keys")
    live = live_frame.sample(
        n=min(config.requests, len(live_frame)), random_state=config.seed
    ).sort_values("measured_at")
    keys = {user: storage.create_device_key(user).plaintext for user in live["user_id"].unique()}
    done()

    port = free_port()
    done = step(f"starting the API on 127.0.0.1:{port}")
    with running_api(settings, port) as base_url:
        done()
        done = step(f"{len(live):,} predictions from {len(keys)} devices over HTTP")
        latencies, answers, errors = send_all(
            base_url,
            request_bodies(live),
            concurrency=config.concurrency,
            headers_for=lambda body: {"Authorization": f"Bearer {keys[body['user_id']]}"},
        )
        done()
    # Graceful stop flushed the outbox; count what each store holds.
    with storage.engine.connect() as connection:
        from sqlalchemy import text

        db_rows = connection.execute(text("SELECT count(*) FROM predictions")).scalar_one()
    start, end = live["measured_at"].min(), live["measured_at"].max() + timedelta(seconds=1)
    blob_rows = len(storage.read_live_dataset(start.to_pydatetime(), end.to_pydatetime()))
    storage.close()

    holdout = result.metrics["holdout_time"]
    alerts = sum(1 for a in answers if a["alert"])
    summary.rows = {
        "model": f"{result.registered.name} v{result.registered.version} ({result.alias})",
        "training rows / users": f"{result.rows:,} / {result.users:,}",
        "threshold (chosen on out-of-fold scores)": f"{result.threshold:.3f}",
        "precision floor": f"{settings.precision_floor:.2f}",
        "held-out precision at threshold": f"{holdout['precision']:.3f}",
        "held-out recall at threshold": f"{holdout['recall']:.3f}",
        "held-out PR-AUC / ROC-AUC": f"{holdout['pr_auc']:.3f} / {holdout['roc_auc']:.3f}",
        "beats baselines": "yes" if result.beats_baselines else "NO",
        "requests / errors": f"{len(latencies):,} / {errors}",
        "live alert rate": f"{alerts / max(1, len(answers)):.3f}",
        "client latency p50 / p99 (ms)": (
            f"{np.percentile(latencies, 50):.1f} / {np.percentile(latencies, 99):.1f}"
        ),
        "rows in SQL DB / blob store": f"{db_rows:,} / {blob_rows:,}",
        "step times (s)": ", ".join(f"{k.split(' ')[0]} {v:.1f}" for k, v in timings.items()),
    }
    return summary
