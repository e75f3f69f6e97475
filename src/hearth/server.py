"""create_app(): the FastAPI application, its routers and its lifespan.

Resources are created once here and handed down through `app.state`: the database, the
engines and the model routes, the gateway service, the metrics registry.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI
from prometheus_client import ProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from hearth import __version__
from hearth.accounts.admin_api import router as accounts_admin_router
from hearth.accounts.api import router as accounts_router
from hearth.accounts.keys import ApiKeys
from hearth.accounts.oidc import OidcClient
from hearth.accounts.sessions import Sessions
from hearth.accounts.users import Users
from hearth.admin.api import router as site_settings_router
from hearth.admin.service import SiteSettingsStore
from hearth.catalog.api import router as catalog_router
from hearth.catalog.cache import RedisCatalogCache
from hearth.catalog.seeding import LOCAL_KINDS, local_hardware
from hearth.catalog.service import Catalog
from hearth.chat.answers import ChatAnswers
from hearth.chat.api import router as chat_router
from hearth.chat.images import ChatImages
from hearth.chat.images_api import router as chat_images_router
from hearth.chat.importers import ChatImports
from hearth.chat.service import Chats
from hearth.chat.sharing import ChatShares
from hearth.chat.sharing_api import router as chat_sharing_router
from hearth.config import Settings
from hearth.db.embedded import EmbeddedPostgres
from hearth.db.migrate import upgrade
from hearth.db.session import Database
from hearth.engines.base import Engine, build_engine
from hearth.errors import ConfigError
from hearth.gateway.api import HOT_ROUTES as GATEWAY_HOT_ROUTES
from hearth.gateway.api import router as gateway_router
from hearth.gateway.limits import Limiter, LocalLimiter, RedisLimiter
from hearth.gateway.ollama_api import router as ollama_router
from hearth.gateway.responses import Responses
from hearth.gateway.routing import ModelRoutes
from hearth.gateway.service import Gateway, build_gateway, redis_client
from hearth.gateway.usage import UsageRecorder
from hearth.http.disconnect import CancelOnDisconnect
from hearth.http.errors import install_error_handlers
from hearth.http.hot_path import HearthApp
from hearth.http.text_guard import TextGuard
from hearth.jobs.queue import JobQueue
from hearth.lab.api import MAX_IMPORT_BYTES as LAB_IMPORT_MAX_BYTES
from hearth.lab.api import router as lab_router
from hearth.lab.jobs import run_queued
from hearth.lab.service import Runs
from hearth.observability.health import router as health_router
from hearth.observability.metrics import DatabaseCollector, Metrics
from hearth.observability.middleware import RequestMiddleware
from hearth.presets.api import router as presets_router
from hearth.presets.service import Presets
from hearth.rag.answer import Answerer
from hearth.rag.api import router as rag_router
from hearth.rag.search import SESSION_SETTINGS as SEARCH_SESSION_SETTINGS
from hearth.rag.search import on_connect as search_on_connect
from hearth.rag.service import Documents
from hearth.rag.setup import open_documents
from hearth.web import install_web

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    on_ready: Callable[[list[str]], None] | None = None,
    run_worker: bool = True,
) -> FastAPI:
    """Build the app. Engines are constructed here, so a bad model path fails before binding.
    `on_ready` is called with the served model names once start-up has finished;
    `run_worker` runs a job worker in this process (`hearth up`), not in `hearth serve`."""
    engines: list[Engine] = [build_engine(config) for config in settings.engines]
    metrics = Metrics()
    ProcessCollector(registry=metrics.registry)
    routes = ModelRoutes(engines)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                services = await open_services(
                    settings, engines, app.state.gateway, stack, run_worker=run_worker
                )
            except (ConfigError, OSError, SQLAlchemyError) as exc:
                # Kept for the CLI, which reports it in one readable line.
                app.state.startup_error = exc
                log.error("start-up failed: %s", exc)
                raise
            app.state.database = services.database
            metrics.registry.register(DatabaseCollector(services.database))
            app.state.documents = services.documents
            app.state.jobs = services.jobs
            app.state.lab = Runs(services.database)
            app.state.responses = Responses(services.database, app.state.gateway)
            app.state.keys = services.keys
            app.state.users = Users(services.database)
            # Deleting an account deletes what it owns; each feature erases its own part.
            app.state.users.on_delete(services.documents.erase_owner)
            if app.state.oidc is not None:
                stack.push_async_callback(app.state.oidc.close)
            app.state.site = SiteSettingsStore(services.database)
            app.state.sessions = Sessions(
                services.database,
                await app.state.site.secret(),
                lifetime=timedelta(days=settings.session_days),
            )
            app.state.answerer = Answerer(
                services.documents, app.state.gateway, prompt_template=settings.rag_prompt_template
            )
            app.state.chats = Chats(services.database)
            app.state.chat_imports = ChatImports(
                services.database, max_image_bytes=settings.chat_image_max_bytes
            )
            app.state.chat_images = ChatImages(
                services.database, max_bytes=settings.chat_image_max_bytes
            )
            app.state.chat_shares = ChatShares(services.database)
            app.state.users.on_delete(app.state.chats.erase_owner)
            app.state.presets = Presets(
                services.database,
                documents=services.documents,
                routes=routes,
                users=app.state.users,
            )
            app.state.presets.on_delete(app.state.chats.forget_presets)
            app.state.users.on_delete(app.state.presets.erase_owner)
            interrupted = await app.state.chats.mark_interrupted()
            if interrupted:
                log.info("%d answers were cut off by a replica that stopped", interrupted)
            app.state.chat_answers = ChatAnswers(
                app.state.chats, app.state.gateway, app.state.answerer, app.state.chat_images
            )
            app.state.catalog = build_catalog(settings, services.database)
            stack.push_async_callback(app.state.catalog.cache.close)
            # This machine is described only when its own engines serve models here.
            local = any(engine.kind in LOCAL_KINDS for engine in engines)
            await app.state.catalog.seed_from_gateway(
                routes, local_hardware=local_hardware() if local else None
            )
            models = [r.model.name for r in routes.all()]
            log.info("ready", extra={"models": models})
            if on_ready:
                on_ready(models)
            yield
            log.info("shutting down")

    app = HearthApp(title="Hearth", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.oidc = build_oidc(settings)
    app.state.metrics = metrics
    app.state.engines = engines
    app.state.routes = routes
    app.state.gateway = gateway_for(settings, routes, metrics)
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(gateway_router)
    app.include_router(ollama_router)
    app.include_router(accounts_router)
    app.include_router(accounts_admin_router)
    app.include_router(site_settings_router)
    app.include_router(rag_router)
    app.include_router(chat_router)
    app.include_router(chat_sharing_router)
    app.include_router(presets_router)
    app.include_router(chat_images_router)
    app.include_router(catalog_router)
    app.include_router(lab_router)
    install_web(app)
    limits = {
        "max_body": settings.max_request_bytes,
        "max_upload": settings.rag_max_file_bytes + 64 * 1024,
        "path_limits": {
            "/api/chats/import": settings.chat_import_max_bytes,
            "/api/lab/import": LAB_IMPORT_MAX_BYTES + 64 * 1024,  # the form's own bytes
        },
        # An image's multipart body: the image and the form around it.
        "suffix_limits": {"/images": settings.chat_image_max_bytes + 64 * 1024},
    }
    ollama_paths = frozenset(route.path for route in ollama_router.routes)  # type: ignore[attr-defined]
    app.add_middleware(TextGuard, ollama_paths=ollama_paths)
    app.add_middleware(CancelOnDisconnect)
    app.add_middleware(RequestMiddleware, metrics=metrics, **limits)
    # The gateway's hottest route skips the layers between RequestMiddleware and itself.
    app.serve_directly(
        GATEWAY_HOT_ROUTES,
        lambda inner: RequestMiddleware(
            CancelOnDisconnect(TextGuard(inner)), metrics=metrics, **limits
        ),
    )
    return app


@dataclass
class Services:
    database: Database
    documents: Documents
    jobs: JobQueue
    keys: ApiKeys
    gateway: Gateway


async def open_services(
    settings: Settings,
    engines: list[Engine],
    gateway: Gateway,
    stack: AsyncExitStack,
    *,
    run_worker: bool,
) -> Services:
    """Everything a process needs besides HTTP: database, engines and the gateway over them
    (retrieval embeds through it), documents, job queue. Shared by the server's lifespan
    and the CLI commands that work without a server."""
    stack.push_async_callback(gateway.limiter.close)
    database = await open_database(settings, stack)
    for engine in engines:
        await engine.start()
        stack.push_async_callback(engine.close)
    gateway.routes.refresh()
    gateway.start()  # health probes, in-flight sync: engines are up
    stack.push_async_callback(gateway.close)
    gateway.usage.start(database, retention_days=settings.usage_retention_days)
    stack.push_async_callback(gateway.usage.close)  # flushes before the database closes
    documents, jobs = await open_documents(settings, database, gateway, stack)
    runs = Runs(database)
    jobs.on_bench(lambda run_id: run_queued(runs, run_id))
    if run_worker:
        jobs.start_worker(concurrency=settings.ingest_concurrency)
    return Services(database, documents, jobs, ApiKeys(database), gateway)


def gateway_for(settings: Settings, routes: ModelRoutes, metrics: Metrics) -> Gateway:
    """The gateway over `routes`, with the limiter and usage recorder the settings ask for."""
    return build_gateway(settings, routes, metrics, build_limiter(settings), UsageRecorder(metrics))


def build_catalog(settings: Settings, database: Database) -> Catalog:
    """The catalog, its reads cached in Redis when configured (shared by every replica,
    invalidated on every write), else in this process."""
    if settings.redis_url is None:
        return Catalog(database)
    cache = RedisCatalogCache(redis_client(settings), timeout=settings.redis_timeout)
    return Catalog(database, cache)


def build_oidc(settings: Settings) -> OidcClient | None:
    """The OpenID Connect client, when single sign-on is configured."""
    if settings.oidc_issuer is None or settings.oidc_client_id is None:
        return None
    secret = settings.oidc_client_secret
    return OidcClient(
        settings.oidc_issuer,
        settings.oidc_client_id,
        secret.get_secret_value() if secret else None,
        scopes=settings.oidc_scopes,
    )


def build_limiter(settings: Settings) -> Limiter:
    """Limits shared by every replica through Redis, or kept in this process."""
    if settings.redis_url is None:
        return LocalLimiter()
    return RedisLimiter(
        redis_client(settings), fail_open=settings.limits_on_redis_failure == "open"
    )


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
    database = Database(
        url,
        pool_size=settings.database_pool_size,
        server_settings=SEARCH_SESSION_SETTINGS,
        on_connect=search_on_connect,
    )
    stack.push_async_callback(database.close)
    if run_migrations:
        revision = await upgrade(database)
        log.info("database schema at revision %s", revision)
    return database
