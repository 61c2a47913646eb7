"""The process's own request metrics over time, for the dashboard's request and latency charts.

Prometheus counters and histograms are cumulative since the process started: a scrape is one
point, and a time series needs a store (Prometheus itself). So that the dashboard works without
one, a daemon thread snapshots this process's registry every few seconds into a bounded ring
(three hours at the default interval); rates and quantiles come from the differences between
consecutive snapshots, as ``rate()`` and ``histogram_quantile()`` would compute them.

Each API process samples itself: with ``serve --workers N`` a dashboard answer describes the
process that served it (its pid is in the answer).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from fatigue_guard.serving.metrics import LATENCY_BUCKETS

# Routes whose requests are not API traffic: probes and scrapes arrive on a timer, and the
# dashboard polling itself would show up as the load it is measuring.
EXCLUDED_PREFIXES = ("/dashboard", "/v1/admin/dashboard", "/metrics", "/healthz", "/readyz")
UPPER_BOUNDS = (*LATENCY_BUCKETS, math.inf)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Cumulative counts at one instant (wall-clock seconds)."""

    at: float
    requests: float
    server_errors: float  # 5xx
    client_errors: float  # 4xx
    buckets: tuple[float, ...]  # cumulative histogram counts per UPPER_BOUNDS entry
    outbox_backlog: float | None


def _included(route: str) -> bool:
    return not route.startswith(EXCLUDED_PREFIXES)


def read_snapshot(registry: CollectorRegistry, at: float | None = None) -> Snapshot:
    """The registry's request counters and latency histogram, summed over API routes."""
    requests = server_errors = client_errors = 0.0
    buckets = [0.0] * len(UPPER_BOUNDS)
    backlog: float | None = None
    index = {bound: i for i, bound in enumerate(UPPER_BOUNDS)}
    for family in registry.collect():
        if family.name == "fg_http_requests":
            for sample in family.samples:
                if not sample.name.endswith("_total") or not _included(sample.labels["route"]):
                    continue
                requests += sample.value
                status = sample.labels["status"]
                if status.startswith("5"):
                    server_errors += sample.value
                elif status.startswith("4"):
                    client_errors += sample.value
        elif family.name == "fg_http_request_duration_seconds":
            for sample in family.samples:
                if not sample.name.endswith("_bucket") or not _included(sample.labels["route"]):
                    continue
                bound = float(sample.labels["le"])
                if bound in index:
                    buckets[index[bound]] += sample.value
        elif family.name == "fg_outbox_backlog":
            backlog = float(family.samples[0].value) if family.samples else None
    return Snapshot(
        at=time.time() if at is None else at,
        requests=requests,
        server_errors=server_errors,
        client_errors=client_errors,
        buckets=tuple(buckets),
        outbox_backlog=backlog,
    )


def histogram_quantile(q: float, cumulative: Iterable[float]) -> float | None:
    """``q``-quantile from cumulative bucket counts (Prometheus' linear interpolation).

    ``None`` without observations. A quantile in the open top bucket is reported as the
    highest finite bound: the histogram cannot say more.
    """
    counts = list(cumulative)
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(UPPER_BOUNDS, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True, slots=True)
class Interval:
    """What happened between two snapshots."""

    at: float  # the later snapshot's time
    seconds: float
    requests: float
    server_errors: float
    client_errors: float
    p50_s: float | None
    p99_s: float | None
    outbox_backlog: float | None


def _between(a: Snapshot, b: Snapshot) -> Interval | None:
    seconds = b.at - a.at
    if seconds <= 0:
        return None
    # A counter that went down means the registry was replaced (a new app in the process):
    # the earlier snapshot says nothing about the later one.
    if b.requests < a.requests:
        return None
    deltas = [max(0.0, y - x) for x, y in zip(a.buckets, b.buckets, strict=True)]
    return Interval(
        at=b.at,
        seconds=seconds,
        requests=b.requests - a.requests,
        server_errors=b.server_errors - a.server_errors,
        client_errors=b.client_errors - a.client_errors,
        p50_s=histogram_quantile(0.5, deltas),
        p99_s=histogram_quantile(0.99, deltas),
        outbox_backlog=b.outbox_backlog,
    )


class MetricsHistory:
    """A bounded ring of snapshots of one registry, filled by a daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        interval_s: float,
        keep: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self.interval_s = interval_s
        self._clock = clock
        self._samples: deque[Snapshot] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at: float | None = None
        self.pid = os.getpid()

    def start(self) -> None:
        self.started_at = self._clock()
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="fg-dashboard-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:  # a failing gauge callback must not end the history
                log.debug("metrics sample failed", exc_info=True)

    def sample(self) -> Snapshot:
        snapshot = read_snapshot(self._registry, self._clock())
        with self._lock:
            self._samples.append(snapshot)
        return snapshot

    def refresh(self, min_age_s: float = 1.0) -> None:
        """Take a snapshot now unless the last one is younger than ``min_age_s``: a chart
        opened between two ticks then ends at the present, not up to an interval ago."""
        with self._lock:
            last = self._samples[-1].at if self._samples else None
        if last is None or self._clock() - last >= min_age_s:
            self.sample()

    def intervals(self) -> list[Interval]:
        with self._lock:
            samples = list(self._samples)
        out = []
        for a, b in itertools.pairwise(samples):
            interval = _between(a, b)
            if interval is not None:
                out.append(interval)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "sampling": self.running,
            "interval_s": self.interval_s,
            "started_at": self.started_at,
        }
