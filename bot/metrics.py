"""Prometheus metrics of one process (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """A registry of its own per process (and per test app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "selfcare_updates",
            "Inbound chat updates by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.handling_seconds = Histogram(
            "selfcare_update_handling_seconds",
            "Time from receiving an update to answering the platform",
            ["channel"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.outbox_depth = Gauge(
            "selfcare_outbox_pending", "Messages waiting in the outbox", registry=self.registry
        )
        self.send_errors = Counter(
            "selfcare_send_errors",
            "Failed sends to a platform by channel",
            ["channel"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "selfcare_rate_limited",
            "429 answers from a platform by channel",
            ["channel"],
            registry=self.registry,
        )
        self.http_errors = Counter(
            "selfcare_http_errors",
            "Requests answered with an error status, by status",
            ["status"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
