"""Plain HTTP traffic: contract rows as request bodies, sent from a few concurrent clients.

The quick demo and many tests send predictions this way; the full loop's phones go through the
reference client instead (:mod:`fatigue_guard.demo.phones`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd

from fatigue_guard.contract.features import FEATURE_NAMES, SEGMENT_COLUMNS


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
    """The cohort before its last ``live_days`` days (to train on), and those days."""
    cutoff = cohort["measured_at"].max().normalize() - timedelta(days=live_days - 1)
    return cohort[cohort["measured_at"] < cutoff], cohort[cohort["measured_at"] >= cutoff]
