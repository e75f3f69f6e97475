"""create_app(): the FastAPI application, its routers and its lifespan.

Resources are created once here and handed down through `app.state`: the database, the
engines and the model routes, the gateway service, the metrics registry.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import ProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from hearth import __version__
from hearth.config import Settings
from hearth.db.embedded import EmbeddedPostgres
from hearth.db.migrate import upgrade
from hearth.db.session import Database
from hearth.engines.base import Engine, build_engine
from hearth.errors import ConfigError
from hearth.gateway.api import router as gateway_router
from hearth.gateway.routing import ModelRoutes
from hearth.gateway.service import Gateway
from hearth.http_errors import install_error_handlers
from hearth.observability.health import router as health_router
from hearth.observability.metrics import Metrics
from hearth.observability.middleware import RequestMiddleware
from hearth.web.api import STATIC_DIR
from hearth.web.api import router as web_router

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, *, on_ready: Callable[[list[str]], None] | None = None
) -> FastAPI:
    """Build the app. Engines are constructed here, so a bad model path fails before binding.
    `on_ready` is called with the served model names once start-up has finished."""
    engines: list[Engine] = [build_engine(config) for config in settings.engines]
    metrics = Metrics()
    ProcessCollector(registry=metrics.registry)
    routes = ModelRoutes(engines)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                app.state.database = await open_database(settings, stack)
                for engine in engines:
                    await engine.start()
                    stack.push_async_callback(engine.close)
                routes.refresh()
            except (ConfigError, OSError, SQLAlchemyError) as exc:
                # Kept for the CLI, which reports it in one readable line.
                app.state.startup_error = exc
                log.error("start-up failed: %s", exc)
                raise
            models = [r.model.name for r in routes.all()]
            log.info("ready", extra={"models": models})
            if on_ready:
                on_ready(models)
            yield
            log.info("shutting down")

    app = FastAPI(title="Hearth", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.engines = engines
    app.state.routes = routes
    app.state.gateway = Gateway(routes, metrics)
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(gateway_router)
    app.include_router(web_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(RequestMiddleware, metrics=metrics, max_body=settings.max_request_bytes)
    return app


async def open_database(
    settings: Settings, stack: AsyncExitStack, *, run_migrations: bool = True
) -> Database:
    """Connect to HEARTH_DATABASE_URL, or start the embedded server; closed by `stack`."""
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    else:
        embedded = EmbeddedPostgres(settings.data_dir)
        url = await embedded.start()
        stack.push_async_callback(embedded.stop)
    database = Database(url, pool_size=settings.database_pool_size)
    stack.push_async_callback(database.close)
    if run_migrations:
        revision = await upgrade(database)
        log.info("database schema at revision %s", revision)
    return database
