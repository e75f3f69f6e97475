"""Prometheus metrics. One registry per app, so several apps in one process (tests) don't clash."""

from __future__ import annotations

from functools import cached_property
from typing import Any

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
            "What x-hearth-overhead-ms reports: from the request's first byte read to its "
            "response's head (a stream's: with its first chunk), less the time waiting for "
            "engines",
            ["model", "deployment"],
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        self.added = Histogram(
            "hearth_gateway_added_seconds",
            "Time the gateway added to a request: from its first byte read to its response's "
            "last byte written, less the time waiting for engines (a stream's waits for each "
            "chunk included); observed as the response ends",
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
        self._deployments: dict[tuple[str, str], DeploymentMetrics] = {}
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def deployment(self, model: str, deployment: str) -> DeploymentMetrics:
        """The children of the per-model, per-deployment metrics, looked up once: `labels()`
        takes a lock and builds a key on every call, several times per request otherwise."""
        key = (model, deployment)
        found = self._deployments.get(key)
        if found is None:
            if len(self._deployments) >= _CACHED_LIMIT:
                self._deployments.clear()
            found = self._deployments[key] = DeploymentMetrics(self, model, deployment)
        return found

    def http(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """`hearth_http_requests` and `..._duration_seconds` children for one request kind."""
        key = (method, route, status)
        found = self._http.get(key)
        if found is None:
            if len(self._http) >= _CACHED_LIMIT:  # methods come from clients: stay bounded
                self._http.clear()
            found = self._http[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        return found


# Children cached per label set; a flood of new label values empties the cache, never grows it.
_CACHED_LIMIT = 4096


class DeploymentMetrics:
    """One (model, deployment) pair's metric children, each made on first use (a child
    shows in /metrics from then on, observed or not)."""

    def __init__(self, metrics: Metrics, model: str, deployment: str) -> None:
        self._metrics = metrics
        self.model = model
        self.deployment = deployment
        self._statuses: dict[int, Any] = {}
        self._outcomes: dict[str, Any] = {}

    @cached_property
    def ttft(self) -> Any:
        return self._metrics.ttft.labels(self.model, self.deployment)

    @cached_property
    def time_per_output_token(self) -> Any:
        return self._metrics.time_per_output_token.labels(self.model, self.deployment)

    @cached_property
    def request_latency(self) -> Any:
        return self._metrics.request_latency.labels(self.model, self.deployment)

    @cached_property
    def overhead(self) -> Any:
        return self._metrics.overhead.labels(self.model, self.deployment)

    @cached_property
    def added(self) -> Any:
        return self._metrics.added.labels(self.model, self.deployment)

    @cached_property
    def prompt_tokens(self) -> Any:
        return self._metrics.tokens.labels(self.model, "prompt")

    @cached_property
    def completion_tokens(self) -> Any:
        return self._metrics.tokens.labels(self.model, "completion")

    def requests(self, status: int) -> Any:
        child = self._statuses.get(status)
        if child is None:
            child = self._statuses[status] = self._metrics.gateway_requests.labels(
                self.model, self.deployment, str(status)
            )
        return child

    def generations(self, outcome: str) -> Any:
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = self._metrics.generations.labels(self.model, outcome)
        return child


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
