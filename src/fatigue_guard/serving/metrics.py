"""Prometheus metrics of the API process (``GET /metrics``).

Each app gets its own registry so that several apps in one process (tests) do not collide;
``serve`` runs one app per process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from fatigue_guard.serving.model_slot import ModelSlot, RefreshOutcome

# Latency buckets centred on our target (single-digit ms) and the budget (200 ms).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "fg_http_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "fg_http_request_duration_seconds",
            "Server-side request latency.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "fg_predictions",
            "Predictions answered, by model version and where they were made.",
            ["model_version", "served_by"],
            registry=r,
        )
        self.alerts = Counter(
            "fg_alerts", "Predictions at or above the threshold.", ["model_version"], registry=r
        )
        self.rejected = Counter(
            "fg_contract_rejections",
            "Inputs refused by the feature contract, by field (data-quality signal).",
            ["field"],
            registry=r,
        )
        self.model_loads = Counter(
            "fg_model_loads", "Model load attempts by outcome.", ["outcome"], registry=r
        )
        self.model_info = Gauge(
            "fg_model_info",
            "1 for the model version being served, by where it came from (registry or cache).",
            ["version", "source"],
            registry=r,
        )
        # Model lifecycle: swaps, refusals, registry outages.
        self.model_refusals = Counter(
            "fg_model_refusals",
            "Model versions refused (failed to load or failed the golden/latency check).",
            ["version"],
            registry=r,
        )
        self.model_swap_seconds = Histogram(
            "fg_model_swap_duration_seconds",
            "Time to download, build, warm and check a new version before the swap.",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.registry_poll_failures = Counter(
            "fg_registry_poll_failures",
            "Looks at the model registry that got no answer (the served model is kept).",
            registry=r,
        )
        self.registry_up = Gauge(
            "fg_registry_up", "1 if the last look at the model registry got an answer.", registry=r
        )

    def bind_gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """Expose a value owned elsewhere (outbox backlog, flush failures) as a gauge."""
        gauge = Gauge(name, doc, registry=self.registry)
        gauge.set_function(read)

    def bind_counter(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """Expose a count owned elsewhere (e.g. by the recorder process) as a counter:
        ``<name>_total``, read at scrape time."""
        self.registry.register(_CounterReader(name, doc, read))

    def observe_model(self, slot: ModelSlot, outcome: RefreshOutcome) -> None:
        """Count one look at the registry and publish which version serves, from where."""
        self.registry_up.set(0 if outcome.outcome == "unreachable" else 1)
        if outcome.outcome == "unreachable":
            self.registry_poll_failures.inc()
        elif outcome.outcome == "swapped":
            self.model_loads.labels("loaded").inc()
            self.model_swap_seconds.observe(outcome.seconds)
        elif outcome.outcome == "refused" and outcome.new:
            self.model_loads.labels("refused").inc()
            self.model_refusals.labels(str(outcome.target)).inc()
        current = slot.current
        self.model_info.clear()
        if current is not None:
            self.model_info.labels(current.version, slot.source or "registry").set(1)


class _CounterReader(Collector):
    """A counter whose value is read from its owner at each scrape (prometheus_client's own
    Counter can only be incremented here)."""

    def __init__(self, name: str, doc: str, read: Callable[[], float]) -> None:
        self._name, self._doc, self._read = name, doc, read

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._doc, value=self._read())

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._doc)
