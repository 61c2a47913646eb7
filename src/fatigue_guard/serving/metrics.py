"""Prometheus metrics of the API process (``GET /metrics``).

Each app gets its own registry so that several apps in one process (tests) do not collide;
``serve`` runs one app per process.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
            "fg_model_info", "1 for the model version being served.", ["version"], registry=r
        )

    def bind_gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """Expose a value owned elsewhere (outbox backlog, flush failures) as a gauge."""
        gauge = Gauge(name, doc, registry=self.registry)
        gauge.set_function(read)
