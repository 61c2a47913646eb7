"""The quick demo: simulate -> train -> register -> serve -> 2,000 predictions over HTTP -> summary.

No drift, no retraining: the product's serving path once, for a first look (``fatigue-guard demo
--quick``). The whole loop is :mod:`fatigue_guard.demo.loop`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.demo.bodies import request_bodies, send_all, split_by_time
from fatigue_guard.demo.logs import logs_to
from fatigue_guard.demo.measures import precision_against_floor
from fatigue_guard.demo.server import (
    DEMO_SHUTDOWN_GRACE_S,
    field_env,
    free_port,
    prepare_home,
    running_api,
)


@dataclass
class QuickConfig:
    users: int = 1200
    days: int = 30
    live_days: int = 7  # the last days are not trained on: devices send them as live traffic
    requests: int = 2000
    concurrency: int = 8
    seed: int = 7
    search_budget_s: float = 20.0


@dataclass
class QuickSummary:
    home: Path
    rows: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # Rows whose figure is under the precision floor, with the sentence that says so.
    alarms: dict[str, str] = field(default_factory=dict)


def run_quick(config: QuickConfig, base: Settings, say: Callable[[str], None]) -> QuickSummary:
    """Every serving step of the product once, on embedded defaults; returns the summary rows."""
    settings = prepare_home(base, shutdown_grace_s=DEMO_SHUTDOWN_GRACE_S)
    with logs_to(settings.home_dir / "demo.log"):
        return _run(config, settings, say)


def _run(config: QuickConfig, settings: Settings, say: Callable[[str], None]) -> QuickSummary:
    from sqlalchemy import text

    from fatigue_guard.lifecycle.deployments import DeploymentRecorder
    from fatigue_guard.lifecycle.registration import train_and_register
    from fatigue_guard.lifecycle.wiring import lifecycle_bus
    from fatigue_guard.simulation import CohortConfig, simulate_cohort
    from fatigue_guard.storage.factory import build_storage

    summary = QuickSummary(home=settings.home_dir)
    timings = summary.timings

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
    with running_api(
        settings, port, extra_env=field_env(settings, ["shutdown_grace_s"])
    ) as base_url:
        done()
        done = step(f"{len(live):,} predictions from {len(keys)} devices over HTTP")
        latencies, answers, errors = send_all(
            base_url,
            request_bodies(live),
            concurrency=config.concurrency,
            headers_for=lambda body: {"Authorization": f"Bearer {keys[body['user_id']]}"},
        )
        done()
    # A graceful stop ships the outbox within its deadline; a batch it could not ship waits for
    # the next start, which is this process: ship it, then count what each store holds.
    storage.recorder.drain(timeout_s=60)
    with storage.engine.connect() as connection:
        db_rows = connection.execute(text("SELECT count(*) FROM predictions")).scalar_one()
    start, end = live["measured_at"].min(), live["measured_at"].max() + timedelta(seconds=1)
    blob_rows = len(storage.read_live_dataset(start.to_pydatetime(), end.to_pydatetime()))
    storage.close()

    holdout = result.metrics["holdout_time"]
    floor = settings.precision_floor
    alerts = sum(1 for a in answers if a["alert"])
    summary.rows = {
        "model": f"{result.registered.name} v{result.registered.version} ({result.alias})",
        "training rows / users": f"{result.rows:,} / {result.users:,}",
        "threshold (out of fold by user and forward in time)": f"{result.threshold:.3f}",
        "precision floor": f"{settings.precision_floor:.2f}",
        "held-out precision at threshold": precision_against_floor(holdout["precision"], floor),
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
    if holdout["precision"] < floor:
        shown = precision_against_floor(holdout["precision"], floor)
        summary.alarms["held-out precision at threshold"] = (
            f"Held-out precision {shown}: the model does not keep its precision floor on the "
            "recent days its training held out."
        )
    return summary
