"""create_engine_app(): the `hearth engine` application and its lifespan.

It holds models and nothing else: no database, no accounts. Its callers are other Hearth
processes (and operators' tools), so one bearer token guards it (`engine_api_key`), which
is required on any address but loopback unless `allow_public_without_auth` says the
network is trusted.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from prometheus_client import ProcessCollector

from hearth import __version__
from hearth.config import Settings, is_loopback
from hearth.engine_server.api import router
from hearth.engine_server.metrics import EngineMetrics
from hearth.engine_server.service import LOCAL_KINDS, EngineServer
from hearth.engines.base import build_engine
from hearth.errors import ConfigError
from hearth.gateway.routing import ModelRoutes
from hearth.http.disconnect import CancelOnDisconnect
from hearth.http.errors import install_error_handlers
from hearth.http.hot_path import HearthApp
from hearth.observability.health import router as health_router
from hearth.observability.metrics import Metrics
from hearth.observability.middleware import RequestMiddleware

log = logging.getLogger(__name__)


def create_engine_app(
    settings: Settings, *, on_ready: Callable[[list[str]], None] | None = None
) -> FastAPI:
    """Build the engine server for `settings.engines` (local kinds only). Models load in
    the lifespan, so /readyz says ready only once they can answer."""
    foreign = [e.name for e in settings.engines if e.kind not in LOCAL_KINDS]
    if foreign:
        raise ConfigError(
            f"hearth engine serves local engines only ({', '.join(LOCAL_KINDS)}); "
            f"remove {', '.join(foreign)} or serve them through `hearth serve`"
        )
    token = settings.engine_api_key
    if token is None and not is_loopback(settings.host) and not settings.allow_public_without_auth:
        raise ConfigError(
            f"hearth engine listens on {settings.host}: set HEARTH_ENGINE_API_KEY (the token "
            "callers send), or HEARTH_ALLOW_PUBLIC_WITHOUT_AUTH=true on a trusted network"
        )
    engines = [build_engine(config) for config in settings.engines]
    routes = ModelRoutes(engines)
    routes.refresh()
    metrics = Metrics()  # HTTP requests and latency, as `hearth serve` reports them
    ProcessCollector(registry=metrics.registry)
    server = EngineServer(
        routes, EngineMetrics(metrics.registry), max_waiting=settings.engine_max_waiting
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for engine in engines:
                try:
                    await engine.start()
                except (ConfigError, OSError) as exc:
                    app.state.startup_error = exc
                    log.error("start-up failed: %s", exc)
                    raise
                stack.push_async_callback(engine.close)
            models = [m.name for m in routes.models()]
            log.info("engine ready", extra={"models": models})
            if on_ready:
                on_ready(models)
            yield
            log.info("shutting down")

    app = HearthApp(title="Hearth engine", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.engines = engines
    app.state.engine_server = server
    app.state.engine_token = token.get_secret_value().encode() if token else None
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(router)
    app.add_middleware(CancelOnDisconnect)  # a gateway that gave up stops the generation
    app.add_middleware(
        RequestMiddleware,
        metrics=metrics,
        max_body=settings.max_request_bytes,
        max_upload=settings.max_request_bytes,
    )
    return app
