"""Failover: trying a request on a model's deployments, then on its fallback models, until
one answers or a failure is the client's (4xx), before anything reached the client.

A failure that says the engine could not take or finish the request (`RETRYABLE`:
unreachable, 5xx, timed out, a broken reply) counts against the deployment's breaker and is
retried elsewhere after a short random wait; any other (the client's request, a model the
engine does not know: 4xx) ends the request at once, and says nothing about the deployment.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hearth.accounts.keys import Caller
from hearth.errors import EngineTimeout, EngineUnavailable, HearthError, ModelNotFound
from hearth.gateway.balancer import Balancer
from hearth.gateway.calls import RETRYABLE, Call
from hearth.gateway.routing import Deployment, ModelRoutes, ServedModel
from hearth.observability.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds: the most the first retry waits (a random time up to it); doubling each retry.
RETRY_BACKOFF = 0.025
RETRY_BACKOFF_CAP = 0.25


class Failover:
    def __init__(
        self,
        routes: ModelRoutes,
        balancer: Balancer,
        metrics: Metrics,
        *,
        retries: int,
        retry_backoff: float = RETRY_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        self.routes = routes
        self.balancer = balancer
        self.metrics = metrics
        self.retries = retries
        self.retry_backoff = retry_backoff
        self._random = rng or random.Random()

    async def run(
        self,
        call: Call,
        served: ServedModel,
        session: str | None,
        attempt: Callable[[Deployment], Awaitable[T]],
    ) -> T:
        """Run `attempt` on the best deployment of the model; on a failure that is not the
        client's, again on the best one not tried yet (or the same), up to `retries` times;
        then the same for each of the model's fallbacks. Returns with the deployment that
        answered held in `call`; raises the last failure if none did."""
        last: HearthError | None = None
        for index, model in enumerate(self.plan(served, call.caller)):
            tried: set[str] = set()
            for retry in range(1 + self.retries):
                if retry:
                    await self._back_off(call, retry)
                deployment = self.balancer.pick(model, exclude=tried, session=session)
                if deployment is None and tried:
                    deployment = self.balancer.pick(model, session=session)
                if deployment is None:
                    break
                if tried:
                    self.metrics.retries.labels(model.name, deployment.id).inc()
                elif index:
                    self.metrics.fallbacks.labels(served.name, model.name).inc()
                tried.add(deployment.id)
                call.attach(model.name, deployment)
                started = time.perf_counter()
                try:
                    if deployment.model.timeout is None:
                        return await attempt(deployment)
                    try:
                        async with asyncio.timeout(deployment.model.timeout):
                            return await attempt(deployment)
                    except TimeoutError:
                        raise EngineTimeout(
                            f"deployment '{deployment.id}' of '{model.name}' did not answer "
                            f"within {deployment.model.timeout:g}s"
                        ) from None
                except RETRYABLE as exc:
                    log.warning(
                        "%s on %s failed (%s); trying elsewhere", model.name, deployment.id, exc
                    )
                    call.failed(exc)
                    call.detach()
                    last = exc
                except ModelNotFound:
                    # The engine does not know its upstream name: a configuration mistake
                    # to log, and the public name (not the engine's) for the caller.
                    log.warning(
                        "deployment %s answered 404 for upstream model '%s'",
                        deployment.id,
                        deployment.upstream,
                    )
                    call.abandoned()
                    call.detach()
                    raise ModelNotFound(served.name) from None
                except BaseException:
                    call.abandoned()
                    call.detach()
                    raise
                finally:
                    call.timing.upstream += time.perf_counter() - started
        if last is not None:
            raise last
        raise EngineUnavailable(
            f"every deployment of '{served.name}' is ejected after failing; "
            f"they are tried again within {self.balancer.health.cooldown:g}s"
        )

    async def _back_off(self, call: Call, retry: int) -> None:
        """Wait before retry number `retry` (1, 2, ...): "full jitter", a random time up to
        `retry_backoff` doubling each retry and capped at `RETRY_BACKOFF_CAP`, so that the
        retries of many requests after one failure do not land on an engine all at once.
        Counted as time waiting for engines, not as Hearth's overhead."""
        if self.retry_backoff <= 0:
            return
        ceiling = min(self.retry_backoff * 2 ** (retry - 1), RETRY_BACKOFF_CAP)
        delay = self._random.uniform(0, ceiling)
        call.timing.upstream += delay
        await asyncio.sleep(delay)

    def plan(self, served: ServedModel, caller: Caller | None) -> list[ServedModel]:
        """The model, then its fallbacks that exist, serve the same kind of request and
        that the caller's key may use."""
        plan = [served]
        for name in served.fallbacks:
            fallback = self.routes.find(name)
            if (
                fallback is not None
                and fallback.type == served.type
                and (caller is None or caller.may_use(name))
            ):
                plan.append(fallback)
        return plan
