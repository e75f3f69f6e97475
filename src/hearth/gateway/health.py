"""Deployment health: passive ejection by a circuit breaker, and active probes.

Passive: `failures` consecutive failed requests (connect errors, timeouts, 5xx, broken
replies) eject a deployment for `cooldown` seconds; then it is half-open and one request
tries it: a success closes the breaker, a failure ejects it again. Client errors (4xx)
say nothing about the deployment and count for neither.

Active: a background task probes every engine every `interval` seconds (`health()`, and
`load()` for what the engine reports about its queue and loaded models). Two failed probes
in a row eject every deployment on that engine at once, without waiting for requests to
fail, and keep it out while probes fail; a good probe re-admits an ejected deployment
whose cooldown has passed, without risking a request on it. Probes run off the request
path; the balancer only reads their results.

Each replica keeps its own breakers: ejection reacts to what this replica sees, in
microseconds, and a replica that cannot reach an engine stops using it even when others can.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from hearth.engines.base import Engine, EngineLoad
from hearth.errors import ConfigError, HearthError
from hearth.gateway.routing import ModelRoutes
from hearth.http.background import BackgroundTask

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
PROBE_FAILURES = 2  # consecutive failed probes that eject an engine's deployments


@dataclass
class Breaker:
    failures: int = 0  # consecutive
    opened_until: float = 0.0  # monotonic; 0: closed
    trial: bool = False  # a half-open trial request is out

    def state(self, now: float) -> str:
        if not self.opened_until:
            return CLOSED
        return OPEN if now < self.opened_until else HALF_OPEN


class Health:
    """Breakers per deployment (engine name, model name) and the engines' latest load."""

    def __init__(
        self,
        *,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self._clock = clock
        self._breakers: dict[tuple[str, str], Breaker] = {}
        self.loads: dict[str, EngineLoad] = {}  # engine name → its last report

    def _breaker(self, engine: str, model: str) -> Breaker:
        key = (engine, model)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = Breaker()
        return breaker

    def state(self, engine: str, model: str) -> str:
        breaker = self._breakers.get((engine, model))
        return CLOSED if breaker is None else breaker.state(self._clock())

    def admits(self, engine: str, model: str) -> bool:
        """Whether a request may go there now (a half-open deployment takes one at a time)."""
        breaker = self._breakers.get((engine, model))
        if breaker is None:
            return True
        state = breaker.state(self._clock())
        return state == CLOSED or (state == HALF_OPEN and not breaker.trial)

    def begin(self, engine: str, model: str) -> None:
        """A request goes there now: if half-open, it is the trial."""
        breaker = self._breakers.get((engine, model))
        if breaker is not None and breaker.state(self._clock()) == HALF_OPEN:
            breaker.trial = True

    def succeeded(self, engine: str, model: str) -> None:
        breaker = self._breakers.get((engine, model))
        if breaker is not None and (breaker.failures or breaker.opened_until):
            if breaker.opened_until:
                log.info("deployment %s/%s re-admitted", engine, model)
            breaker.failures, breaker.opened_until, breaker.trial = 0, 0.0, False

    def abandoned(self, engine: str, model: str) -> None:
        """A request there ended saying nothing about its health (a client error, a
        cancellation): a half-open trial is given back."""
        breaker = self._breakers.get((engine, model))
        if breaker is not None:
            breaker.trial = False

    def failed(self, engine: str, model: str) -> None:
        breaker = self._breaker(engine, model)
        now = self._clock()
        breaker.failures += 1
        half_open = breaker.state(now) == HALF_OPEN
        if half_open or (breaker.failures >= self.threshold and not breaker.opened_until):
            self._eject(breaker, now)
            log.warning(
                "deployment %s/%s ejected for %gs after %d consecutive failures",
                engine,
                model,
                self.cooldown,
                breaker.failures,
            )

    def probe_failed(self, engine: str, models: list[str]) -> None:
        # Each failed probe extends the ejection: no trial request while probes still fail.
        now = self._clock()
        for model in models:
            breaker = self._breaker(engine, model)
            if not breaker.opened_until:
                log.warning("deployment %s/%s ejected: its health probe failed", engine, model)
            self._eject(breaker, now)

    def probe_succeeded(self, engine: str, models: list[str], load: EngineLoad | None) -> None:
        now = self._clock()
        if load is not None:
            self.loads[engine] = load
        else:
            self.loads.pop(engine, None)
        for model in models:
            breaker = self._breakers.get((engine, model))
            if breaker is not None and breaker.state(now) == HALF_OPEN and not breaker.trial:
                self.succeeded(engine, model)

    def _eject(self, breaker: Breaker, now: float) -> None:
        breaker.opened_until = now + self.cooldown
        breaker.trial = False


class HealthChecker:
    """The background task that probes every engine every `interval` seconds.

    A probe also re-reads the model list of an engine that discovers its models (no
    `models` configured): when one came up after Hearth, or now serves other models, the
    routes are rebuilt, so a model appears in /v1/models and takes requests within one
    interval, without a restart."""

    def __init__(self, health: Health, routes: ModelRoutes, interval: float) -> None:
        self.health = health
        self.routes = routes
        self.engines = routes.engines
        self.interval = interval
        self._failures: dict[str, int] = {}  # engine → consecutive failed probes
        self._task = BackgroundTask("hearth-health")

    def start(self) -> None:
        if self.interval > 0:
            self._task.start(self._run())

    async def close(self) -> None:
        await self._task.stop()

    async def check(self) -> None:
        """Probe every engine once, concurrently; rebuild the routes if what they serve
        changed."""
        before = self._served()
        await asyncio.gather(*(self._probe(engine) for engine in self.engines))
        if self._served() != before:
            try:
                self.routes.refresh()
            except ConfigError as exc:
                # Say, for instance, a discovered name that a configured embedding model
                # already uses: keep serving the table that worked.
                log.error("models changed, but the routes were kept as they were: %s", exc)
            else:
                log.info("models changed; now serving %s", [m.name for m in self.routes.models()])

    def _served(self) -> list[tuple[str, ...]]:
        return [tuple(m.name for m in engine.models()) for engine in self.engines]

    async def _probe(self, engine: Engine) -> None:
        models = [m.name for m in engine.models()]
        limit = max(self.interval, 1.0)
        try:
            healthy = await asyncio.wait_for(engine.health(), limit)
        except Exception as exc:  # a probe's failure is its answer
            log.warning("engine %r: health probe failed: %r", engine.name, exc)
            healthy = False
        if not healthy:
            # Two failures in a row, as one lost probe must not take a model offline.
            self._failures[engine.name] = failures = self._failures.get(engine.name, 0) + 1
            if failures >= PROBE_FAILURES:
                self.health.probe_failed(engine.name, models)
            return
        self._failures.pop(engine.name, None)
        try:
            load = await asyncio.wait_for(engine.load(), limit)
        except (HearthError, TimeoutError):
            load = None  # an Ollama /api/ps hiccup is not worth an ejection
        self.health.probe_succeeded(engine.name, models, load)

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)
