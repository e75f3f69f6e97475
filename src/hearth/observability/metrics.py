"""Prometheus metrics. One registry per app, so several apps in one process (tests) don't clash."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


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
            ["model", "deployment"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.time_per_output_token = Histogram(
            "hearth_time_per_output_token_seconds",
            "Time between output tokens after the first, per request",
            ["model", "deployment"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.request_latency = Histogram(
            "hearth_request_latency_seconds",
            "End-to-end time of a /v1 request, to its last byte",
            ["model", "deployment"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "hearth_gateway_overhead_seconds",
            "Time Hearth spent on a request besides waiting for engines, to the response "
            "(or the first chunk) — what x-hearth-overhead-ms reports",
            ["model", "deployment"],
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        self.gateway_requests = Counter(
            "hearth_gateway_requests",
            "/v1 requests by model, deployment that served (or last failed) and status",
            ["model", "deployment", "status"],
            registry=r,
        )
        self.retries = Counter(
            "hearth_gateway_retries",
            "Attempts again after a failure, by model and the deployment retried on",
            ["model", "deployment"],
            registry=r,
        )
        self.fallbacks = Counter(
            "hearth_gateway_fallbacks",
            "Requests passed to a fallback model after all deployments failed",
            ["model", "fallback"],
            registry=r,
        )
        self.limit_rejections = Counter(
            "hearth_limit_rejections",
            "Requests refused by a rate limit or budget, by model and the limit that refused",
            ["model", "limit"],
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
        self.cache_lookups = Counter(
            "hearth_response_cache_lookups",
            "Response cache lookups by result (hit, miss)",
            ["model", "result"],
            registry=r,
        )
        self.generations = Counter(
            "hearth_generations",
            "Chat generations by how they ended",
            ["model", "outcome"],
            registry=r,
        )


class DatabaseCollector:
    """`hearth_db_statements_total`: SQL statements this process sent (round trips)."""

    def __init__(self, database: object) -> None:
        self.database = database

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            "hearth_db_statements", "SQL statements sent to PostgreSQL by this process"
        )
        family.add_metric([], getattr(self.database, "statements", 0))
        yield family
