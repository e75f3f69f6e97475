"""Prometheus metrics. One registry per app, so several apps in one process (tests) don't clash."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "hearth_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "hearth_http_request_duration_seconds",
            "Time to the end of the response",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "hearth_http_requests_in_flight", "Requests being served", registry=r
        )
        self.tokens = Counter(
            "hearth_tokens",
            "Tokens processed",
            ["model", "kind"],
            registry=r,
        )
        self.ttft = Histogram(
            "hearth_time_to_first_token_seconds",
            "Time from request to first generated token",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.limit_rejections = Counter(
            "hearth_limit_rejections",
            "Requests refused by a rate limit or budget",
            ["model"],
            registry=r,
        )
        self.usage_written = Counter(
            "hearth_usage_rows_written", "Usage rows written to the database", registry=r
        )
        self.usage_dropped = Counter(
            "hearth_usage_rows_dropped",
            "Usage rows dropped because the buffer was full",
            registry=r,
        )
        self.generations = Counter(
            "hearth_generations",
            "Chat generations by how they ended",
            ["model", "outcome"],
            registry=r,
        )
