"""One /v1 request on its way through the gateway: its timing, the deployment it holds,
and the bookkeeping done once however it ends (limits, usage row, metrics, breaker)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hearth.accounts.keys import Caller
from hearth.errors import EngineTimeout, EngineUnavailable, HearthError, UpstreamError
from hearth.gateway.limits import Admission
from hearth.gateway.routing import Deployment
from hearth.gateway.usage import Usage
from hearth.observability.metrics import DeploymentMetrics

if TYPE_CHECKING:
    from hearth.gateway.service import Gateway

log = logging.getLogger(__name__)

# What may be retried elsewhere: the engine could not take or finish the request. Client
# errors (4xx) would fail the same way on any deployment.
RETRYABLE = (EngineUnavailable, EngineTimeout, UpstreamError)


@dataclass(slots=True)
class Timing:
    """Where a request's time went, for what the gateway reports as its own.

    Both figures start at `received`, when the request's first bytes were read
    (`hearth.http.stamps.RECEIVED`), and leave out `upstream`, the time waiting for engines:
    each attempt from its start to its reply read and validated (failed attempts and the
    backoff before a retry included), and a stream's wait for each next batch of chunks.
    That wait therefore holds Hearth's own side of the upstream hop too (building and
    writing the engine's request, reading and validating its reply); bench/RESULTS.md
    measures how much.

    - `overhead`, for the `x-hearth-overhead-ms` header and `hearth_gateway_overhead_seconds`:
      up to the response's head (`ready`). A header goes out before the body, so it can
      not hold the body's serialization and writing, nor a stream's relaying after its
      first chunk.
    - `hearth_gateway_added_seconds`, observed by `ended`: up to the response's last byte
      written, for requests that reached a deployment (`added` is its histogram's child)
      and whose route registered `ended` with RequestMiddleware (`stamps.ON_END`).

    Neither holds what happens before the server reads the request (the client's send,
    the kernel, waking the event loop) or after the last write; the client sees those."""

    received: float = field(default_factory=time.perf_counter)
    upstream: float = 0.0
    overhead: float | None = None
    cached: bool = False  # answered from the response cache
    added: Any = None  # hearth_gateway_added_seconds{model, deployment}, once attached

    def ready(self) -> float:
        """The response is about to start: fix the overhead (seconds)."""
        if self.overhead is None:
            self.overhead = max(time.perf_counter() - self.received - self.upstream, 0.0)
        return self.overhead

    def ended(self, now: float) -> None:
        """The response's last byte is written (`now`, perf_counter): observe the time
        added, if a deployment was attached."""
        added = self.added
        if added is not None:
            self.added = None  # once
            added.observe(max(now - self.received - self.upstream, 0.0))


@dataclass
class Call:
    """One /v1 request in flight: what it needs to settle its limits, record its usage and
    update the metrics once, however it ends."""

    gateway: Gateway
    caller: Caller | None
    model: str  # as asked for
    endpoint: str
    admission: Admission | None
    timing: Timing
    started: float = field(default_factory=time.perf_counter)
    ttft: float | None = None
    served: str = ""  # the model that answered: `model`, or one of its fallbacks
    deployment: Deployment | None = None  # the last one tried
    held: bool = False  # counted in the deployment's in-flight requests
    label: str = ""  # what usage rows call the deployment when none served it ("cache")
    finished: bool = False
    call_id: uuid.UUID | None = None  # set when an estimate of its usage was recorded
    children: DeploymentMetrics | None = None  # the metrics of (`served`, `deployment`)
    end_user: str | None = None  # whom the application asked for (its `user`)

    def __post_init__(self) -> None:
        self.served = self.model

    def attach(self, model: str, deployment: Deployment) -> None:
        self.served, self.deployment, self.held = model, deployment, True
        self.children = children = self.gateway.metrics.deployment(model, deployment.id)
        self.timing.added = children.added
        self.gateway.balancer.begin(deployment, model)

    def detach(self) -> None:
        if self.held and self.deployment is not None:
            self.gateway.balancer.end(self.deployment)
        self.held = False

    def succeeded(self) -> None:
        if self.deployment is not None:
            self.gateway.balancer.health.succeeded(self.deployment.id, self.served)

    def failed(self, exc: BaseException) -> None:
        if self.deployment is not None:
            if isinstance(exc, RETRYABLE):
                self.gateway.balancer.health.failed(self.deployment.id, self.served)
            else:
                self.abandoned()

    def abandoned(self) -> None:
        if self.deployment is not None:
            self.gateway.balancer.health.abandoned(self.deployment.id, self.served)

    def estimate(self, prompt: int) -> None:
        """A stream has started: record an estimate of its usage (the prompt's tokens), which
        its real row replaces when it ends, so a replica that dies mid-stream still leaves
        a row (hearth.gateway.usage)."""
        deployment = self.deployment
        self.call_id = uuid.uuid4()
        self._record_usage(
            deployment.id if deployment else self.label,
            status=0,
            prompt_tokens=prompt,
            completion_tokens=0,
            latency_ms=0.0,
            cost=deployment.model.cost(prompt, 0) if deployment else 0.0,
            estimated=True,
        )

    def _record_usage(self, deployment: str, **row: Any) -> None:
        """Buffer a usage row of this call: who asked, for what, and `row`'s figures."""
        caller = self.caller
        self.gateway.usage.record(
            Usage(
                model=self.served,
                deployment=deployment,
                endpoint=self.endpoint,
                key_id=caller.key_id if caller else None,
                owner_id=caller.principal.user_id if caller else None,
                call_id=self.call_id,
                end_user=self.end_user,
                **row,
            )
        )

    def first_token(self) -> None:
        # Observed in the metrics at the end (`_record`), not on the first chunk's way out.
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.started

    async def finish(
        self, status: int, outcome: str | None, prompt: int = 0, completion: int = 0
    ) -> None:
        """Settle the limits, record the usage row and the metrics: once, however the
        request ended."""
        if self.finished:
            return
        self.finished = True
        cost = self._record(status, outcome, prompt, completion)
        if self.admission is not None:
            await self._settle(prompt + completion, cost)

    def finish_soon(
        self, status: int, outcome: str | None, prompt: int = 0, completion: int = 0
    ) -> None:
        """`finish`, at the event loop's next turn: for a complete answer whose route
        writes it without waiting (a JSON reply), so this bookkeeping (a tenth of the
        request's CPU) happens after the response has left, not before."""
        if self.finished:
            return
        self.finished = True
        asyncio.get_running_loop().call_soon(self._finish_now, status, outcome, prompt, completion)

    def _finish_now(self, status: int, outcome: str | None, prompt: int, completion: int) -> None:
        cost = self._record(status, outcome, prompt, completion)
        if self.admission is not None:
            self.gateway.spawn(self._settle(prompt + completion, cost))

    async def _settle(self, tokens: int, cost: float) -> None:
        assert self.admission is not None
        try:
            await self.gateway.limiter.settle(self.admission, tokens=tokens, cost=cost)
        except Exception:  # the lease frees the slot; never fail a finished request
            log.warning("could not settle limits", exc_info=True)

    def _record(self, status: int, outcome: str | None, prompt: int, completion: int) -> float:
        """Free the deployment's slot; metrics and the usage row. Returns the cost."""
        metrics = self.gateway.metrics
        deployment = self.deployment
        name = deployment.id if deployment else self.label
        self.detach()
        cost = deployment.model.cost(prompt, completion) if deployment else 0.0
        latency = time.perf_counter() - self.started
        children = self.children  # set with `deployment`
        if children is None:
            children = metrics.deployment(self.served, name)
        children.prompt_tokens.inc(prompt)
        children.completion_tokens.inc(completion)
        children.requests(status).inc()
        if self.ttft is not None:
            children.ttft.observe(self.ttft)
        if deployment is not None:
            children.request_latency.observe(latency)
            if self.timing.overhead is None and status == 200:
                self.timing.ready()
            if self.timing.overhead is not None:
                children.overhead.observe(self.timing.overhead)
            if self.ttft is not None and completion > 1:
                per_token = (latency - self.ttft) / (completion - 1)
                children.time_per_output_token.observe(per_token)
        if outcome is not None:
            children.generations(outcome).inc()
        self._record_usage(
            name,
            status=status,
            prompt_tokens=prompt,
            completion_tokens=completion,
            latency_ms=latency * 1000,
            ttft_ms=self.ttft * 1000 if self.ttft is not None else None,
            cost=cost,
        )
        return cost


def status_of(exc: BaseException) -> int:
    return (
        exc.status
        if isinstance(exc, HearthError)
        else 499
        if isinstance(exc, asyncio.CancelledError)
        else 500
    )
