"""Choosing the deployment a request goes to.

Among the deployments the circuit breakers admit, the balancer takes the least busy for its
weight: `busy / weight`, lowest first, ties broken at random in proportion to the weights.
So an idle pool shares sequential requests by weight (3:1 weights, 3:1 traffic), and under
load each deployment holds in-flight requests in proportion to its weight.

`busy` is what is known of the work in front of a new request there:

- requests in flight from Hearth (this replica's exact count, others' synced, see
  `inflight.py`), or what the engine reports running and waiting, whichever is more; an
  engine also serves traffic that is not ours, but reports it only every probe interval;
- plus `COLD_LOAD` when the engine reports which models are loaded and this one is not
  (an Ollama swap takes seconds: worth queueing behind a few requests to avoid);
- plus `KV_FULL` when vLLM's KV cache is nearly full (new requests wait for room).

With a session key (the `session_affinity_header`), the load is ignored: the deployment is
chosen by weighted rendezvous hashing of the key among the admitted deployments. Every
replica makes the same choice without sharing anything, the conversation returns to the
engine that holds its prefix in cache, and when a deployment is ejected only its own
sessions move.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Collection, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hearth.gateway.health import CLOSED, Health
from hearth.gateway.inflight import InFlight
from hearth.gateway.routing import Deployment, ModelRoutes, ServedModel

COLD_LOAD = 4.0
KV_FULL = 2.0
_KV_FULL_AT = 0.95


class Balancer:
    def __init__(
        self, health: Health, in_flight: InFlight, *, rng: random.Random | None = None
    ) -> None:
        self.health = health
        self.in_flight = in_flight
        self._random = rng or random.Random()

    def pick(
        self,
        model: ServedModel,
        *,
        exclude: Collection[str] = (),
        session: str | None = None,
    ) -> Deployment | None:
        """The deployment for the next attempt, or None if none is admitted. `exclude`:
        deployment ids already tried for this request."""
        candidates = [
            d
            for d in model.deployments
            if d.id not in exclude and self.health.admits(d.id, model.name)
        ]
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        if session:
            return max(candidates, key=lambda d: _rendezvous(session, d))
        scores = [(self.busy(d) / d.model.weight, d) for d in candidates]
        best = min(score for score, _ in scores)
        tied = [d for score, d in scores if score <= best + 1e-9]
        if len(tied) == 1:
            return tied[0]
        return self._random.choices(tied, weights=[d.model.weight for d in tied])[0]

    def busy(self, deployment: Deployment) -> float:
        """The work known to be ahead of a new request on this deployment."""
        ours = self.in_flight.count(deployment.id)
        load = self.health.loads.get(deployment.id)
        if load is None:
            return float(ours)
        reported = (load.running or 0) + (load.waiting or 0)
        busy = float(max(ours, reported))
        if load.capacity and reported >= load.capacity:
            busy += 1  # every slot taken: a new request waits for one
        if load.loaded_models is not None and deployment.upstream not in load.loaded_models:
            busy += COLD_LOAD
        if load.kv_cache_usage is not None and load.kv_cache_usage >= _KV_FULL_AT:
            busy += KV_FULL
        return busy

    def begin(self, deployment: Deployment, model: str) -> None:
        """The request goes to `deployment` now."""
        self.in_flight.acquire(deployment.id)
        self.health.begin(deployment.id, model)

    def end(self, deployment: Deployment) -> None:
        self.in_flight.release(deployment.id)


def _rendezvous(session: str, deployment: Deployment) -> float:
    # Weighted rendezvous (highest random weight) hashing: -w / ln(u), u uniform in (0, 1)
    # from the hash, picks each deployment with probability proportional to its weight.
    digest = hashlib.blake2b(f"{session}\0{deployment.id}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 1) / (2**64 + 2)
    return -deployment.model.weight / math.log(u)


class DeploymentCollector(Collector):
    """Gauges read at scrape time, so the request path updates nothing for them."""

    def __init__(self, routes: ModelRoutes, balancer: Balancer) -> None:
        self.routes = routes
        self.balancer = balancer

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health, in_flight = self.balancer.health, self.balancer.in_flight
        engines = sorted({d.id for m in self.routes.models() for d in m.deployments})
        flying = GaugeMetricFamily(
            "hearth_deployment_in_flight",
            "Requests this replica has in flight on each engine",
            labels=["deployment"],
        )
        for engine in engines:
            flying.add_metric([engine], in_flight.local[engine])
        yield flying
        healthy = GaugeMetricFamily(
            "hearth_deployment_healthy",
            "1 when the deployment takes requests; 0 while ejected (circuit open or half-open)",
            labels=["model", "deployment"],
        )
        for model in self.routes.models():
            for d in model.deployments:
                healthy.add_metric([model.name, d.id], health.state(d.id, model.name) == CLOSED)
        yield healthy
        running = GaugeMetricFamily(
            "hearth_engine_requests_running",
            "Requests the engine reports running",
            labels=["deployment"],
        )
        waiting = GaugeMetricFamily(
            "hearth_engine_requests_waiting",
            "Requests the engine reports queued",
            labels=["deployment"],
        )
        for engine, load in sorted(health.loads.items()):
            if load.running is not None:
                running.add_metric([engine], load.running)
            if load.waiting is not None:
                waiting.add_metric([engine], load.waiting)
        yield running
        yield waiting
