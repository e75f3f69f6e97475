"""The engine server's Prometheus metrics: requests, tokens, latency, and the load gauges
the gateway's balancer and an autoscaler read (`hearth_engine_requests_running` and
`_waiting`, per model, like vLLM's `vllm:num_requests_running` and `_waiting`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hearth.engines.protocol import Usage

if TYPE_CHECKING:
    from hearth.engine_server.service import EngineServer

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.requests = Counter(
            "hearth_engine_requests",
            "Requests by model, endpoint and status (499: the client left)",
            ["model", "endpoint", "status"],
            registry=r,
        )
        self.rejected = Counter(
            "hearth_engine_rejected_requests",
            "Requests refused with 503 because the model's queue was full",
            ["model"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "hearth_engine_prompt_tokens", "Prompt (input) tokens processed", ["model"], registry=r
        )
        self.generation_tokens = Counter(
            "hearth_engine_generation_tokens", "Tokens generated", ["model"], registry=r
        )
        self.ttft = Histogram(
            "hearth_engine_time_to_first_token_seconds",
            "Time from admission to the first generated chunk (queueing included)",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "hearth_engine_request_duration_seconds",
            "Time from admission to the end of a generation",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def watch(self, server: EngineServer) -> None:
        """Report `server`'s load at every scrape."""
        self.registry.register(_LoadCollector(server))

    @contextmanager
    def outcome(self, model: str, endpoint: str) -> Iterator[None]:
        """Count the request of the enclosed block by the status it ends with."""
        status = "200"
        try:
            yield
        except BaseException as exc:
            status = status_of(exc)
            raise
        finally:
            self.requests.labels(model, endpoint, status).inc()

    def first_token(self, model: str, started: float) -> None:
        self.ttft.labels(model).observe(time.perf_counter() - started)

    def finished(self, model: str, started: float, usage: Usage | None) -> None:
        self.duration.labels(model).observe(time.perf_counter() - started)
        if usage is not None:
            self.prompt_tokens.labels(model).inc(usage.prompt_tokens)
            self.generation_tokens.labels(model).inc(usage.completion_tokens)


def status_of(exc: BaseException) -> str:
    """The HTTP status an exception becomes (500 for what is not one of ours; 499, as
    nginx says, for a request cancelled because its client left)."""
    if isinstance(exc, asyncio.CancelledError):
        return "499"
    status = getattr(exc, "status", None)
    return str(status) if isinstance(status, int) else "500"


class _LoadCollector(Collector):
    def __init__(self, server: EngineServer) -> None:
        self.server = server

    def collect(self) -> Iterator[GaugeMetricFamily]:
        running = GaugeMetricFamily(
            "hearth_engine_requests_running", "Requests generating now", labels=["model"]
        )
        waiting = GaugeMetricFamily(
            "hearth_engine_requests_waiting",
            "Requests admitted and waiting for a slot",
            labels=["model"],
        )
        slots = GaugeMetricFamily(
            "hearth_engine_slots", "Requests the model serves at once", labels=["model"]
        )
        speed = GaugeMetricFamily(
            "hearth_engine_generation_tokens_per_second",
            "Tokens generated per second over the last 10 s (llama-server engines)",
            labels=["model"],
        )
        prompt = CounterMetricFamily(
            "hearth_engine_prompt_cache_lookup_tokens",
            "Prompt tokens of finished requests (llama-server engines)",
            labels=["model"],
        )
        cached = CounterMetricFamily(
            "hearth_engine_prompt_cache_hit_tokens",
            "Of those, tokens reused from the engine's prompt cache (not evaluated again)",
            labels=["model"],
        )
        for model in self.server.routes.models():
            load = self.server.load(model.name)
            running.add_metric([model.name], load.running or 0)
            waiting.add_metric([model.name], load.waiting or 0)
            slots.add_metric([model.name], load.capacity or 1)
            stats = self.server.stats(model.name)
            if stats is not None:
                speed.add_metric([model.name], stats[0])
                prompt.add_metric([model.name], stats[1])
                cached.add_metric([model.name], stats[2])
        yield running
        yield waiting
        yield slots
        yield speed
        yield prompt
        yield cached
