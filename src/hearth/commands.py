"""What the `hearth worker`, `ingest` and `search` commands do, without a web server: the
same services as `hearth up`, opened in the command's own process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from hearth.accounts.keys import ApiKeys, KeyCreate
from hearth.accounts.principal import LOCAL_USER, Principal
from hearth.accounts.users import UserCreate, Users
from hearth.config import Settings
from hearth.engines.base import build_engine
from hearth.errors import InvalidRequest, NotFound
from hearth.gateway.routing import ModelRoutes
from hearth.observability.metrics import Metrics
from hearth.rag.parsers import is_supported
from hearth.rag.schemas import CollectionCreate, DocumentPublic
from hearth.rag.service import Documents
from hearth.server import Services, gateway_for, open_database, open_services


@asynccontextmanager
async def services(settings: Settings, *, run_worker: bool) -> AsyncIterator[Services]:
    engines = [build_engine(config) for config in settings.engines]
    gateway = gateway_for(settings, ModelRoutes(engines), Metrics())
    async with AsyncExitStack() as stack:
        yield await open_services(settings, engines, gateway, stack, run_worker=run_worker)


async def run_worker(settings: Settings, concurrency: int, health_port: int | None = None) -> None:
    async with services(settings, run_worker=False) as svc:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        health = None
        if health_port is not None:
            health = await _serve_health(settings, svc, health_port)
        svc.jobs.start_worker(concurrency=concurrency)
        click.echo(f"worker running (concurrency {concurrency}); stop with Ctrl-C", err=True)
        await stop.wait()
        click.echo("worker stopping: the job in progress is abandoned and retried later", err=True)
        if health is not None:
            server, serving = health
            server.should_exit = True
            await serving


async def _serve_health(
    settings: Settings, svc: Services, port: int
) -> tuple[Any, asyncio.Task[None]]:
    """/healthz, /readyz and /metrics of this worker on `port` (probes and Prometheus),
    served from this process's event loop beside the jobs."""
    import uvicorn
    from fastapi import FastAPI

    from hearth.observability.health import router as health_router
    from hearth.observability.metrics import DatabaseCollector

    app = FastAPI(title="Hearth worker", openapi_url=None)
    app.state.database = svc.database
    app.state.engines = svc.gateway.routes.engines
    app.state.metrics = svc.gateway.metrics
    svc.gateway.metrics.registry.register(DatabaseCollector(svc.database))
    app.include_router(health_router)
    config = uvicorn.Config(
        app, host=settings.host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = _signal_free_server()(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it (the port is in use, say)
            raise OSError(f"the worker's health server on port {port} did not start")
        await asyncio.sleep(0.02)
    return server, task


def _signal_free_server() -> type:
    import uvicorn

    class SignalFreeServer(uvicorn.Server):
        """uvicorn, leaving SIGTERM and SIGINT to the worker, which stops it itself."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return SignalFreeServer


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.parts)
                and is_supported(p.name)
            )
        else:
            found.append(path)
    return found


async def acting_as(database: Any, who: str | None) -> Principal:
    """Whom `hearth ingest` and `hearth search` act as: the account `--as` names, else the
    first admin, so that what the command line makes is theirs and visible to them; with no
    account yet, the machine's operator ("local"), as before anyone signed up."""
    principal = await Users(database).principal(who)
    if principal is None:
        click.echo(
            'no accounts yet: acting as the command line\'s own user "local" '
            "(an admin sees its collections in the admin view)",
            err=True,
        )
        return LOCAL_USER
    return principal


async def ingest_paths(
    settings: Settings, paths: list[Path], collection_name: str, who: str | None = None
) -> int:
    """Ingest files with a worker in this process; show progress; return how many failed."""
    files = _files(paths)
    if not files:
        raise click.UsageError("no supported files found")
    async with services(settings, run_worker=True) as svc:
        documents = svc.documents
        principal = await acting_as(svc.database, who)
        try:
            collection = await documents.find_collection(principal, collection_name)
        except NotFound:
            collection = await documents.create_collection(
                principal, CollectionCreate(name=collection_name)
            )
        queued: list[DocumentPublic] = []
        rejected: list[str] = []
        for path in files:
            try:
                doc, _ = await documents.add_document(
                    principal, collection.id, path.name, await asyncio.to_thread(path.read_bytes)
                )
                queued.append(doc)
            except Exception as exc:  # one bad file must not stop the others
                rejected.append(f"{path}: {getattr(exc, 'message', exc)}")
        done = await _follow(documents, principal, [d.id for d in queued])
    failed = [d for d in done if d.status == "failed"]
    ready = [d for d in done if d.status == "ready"]
    click.echo(
        f"{len(ready)} ready ({sum(d.chunks for d in ready)} chunks), "
        f"{len(failed) + len(rejected)} failed, in collection '{collection_name}'"
    )
    for line in rejected + [f"{d.filename}: {d.error}" for d in failed]:
        click.echo(f"  failed: {line}", err=True)
    return len(failed) + len(rejected)


PROGRESS_SECONDS = 5.0  # without a terminal, a progress line this often (and at the end)


async def _follow(
    documents: Documents, principal: Principal, ids: list[uuid.UUID]
) -> list[DocumentPublic]:
    """Poll the documents until each is ready or failed: a progress bar on a terminal, and
    a line every few seconds in a log (where a bar would print nothing until the end)."""
    pending = dict.fromkeys(ids)
    finished: list[DocumentPublic] = []
    started = last = time.monotonic()

    def line() -> None:
        elapsed = time.monotonic() - started
        failed = sum(d.status == "failed" for d in finished)
        click.echo(
            f"ingesting: {len(finished)}/{len(ids)} done ({failed} failed), "
            f"{len(finished) / max(elapsed, 1e-9):.1f} documents/s, {elapsed:.0f} s",
            err=True,
        )

    terminal = sys.stderr.isatty()
    with click.progressbar(
        length=len(ids), label="ingesting", file=sys.stderr, show_pos=True
    ) as bar:
        while pending:
            for doc_id in list(pending):
                with contextlib.suppress(NotFound):
                    doc = await documents.get_document(principal, doc_id)
                    if doc.status in ("ready", "failed"):
                        finished.append(doc)
                        del pending[doc_id]
                        bar.update(1)
            if not terminal and (not pending or time.monotonic() - last >= PROGRESS_SECONDS):
                line()
                last = time.monotonic()
            if pending:
                await asyncio.sleep(0.2)
    return finished


async def search_collection(
    settings: Settings,
    name: str,
    query: str,
    mode: str,
    k: int,
    who: str | None = None,
    explain: bool = False,
) -> None:
    async with services(settings, run_worker=False) as svc:
        principal = await acting_as(svc.database, who)
        collection = await svc.documents.find_collection(principal, name)
        results = await svc.documents.search(
            principal,
            [collection.id],
            query,
            k=k,
            mode=mode,
            explain=explain,  # type: ignore[arg-type]
        )
    if not results:
        click.echo("no results")
    for i, hit in enumerate(results, 1):
        where = " > ".join(hit.headings)
        page = f", page {hit.page}" if hit.page else ""
        click.echo(
            click.style(f"[{i}] {hit.filename}{page}", bold=True)
            + (f"  ({where})" if where else "")
            + f"  score {hit.score:.4f}"
        )
        if hit.explain is not None:
            click.echo("    " + explanation(hit.explain, mode))
        click.echo("    " + hit.text[:400].replace("\n", "\n    ") + "\n")


def explanation(why: Any, mode: str) -> str:
    """One line on why a result ranked where it did (`hearth search --explain`): its place on
    each side the mode searched, and the score it was ordered by."""

    def side(rank: int | None, name: str, value: float | None, label: str) -> str:
        if rank is None:
            return f"{name}: not among its candidates"
        return f"{name} rank {rank} ({label} {value:.4f})"

    parts = []
    if mode != "text":
        parts.append(side(why.vector_rank, "vector", why.similarity, "cosine"))
    if mode != "vector":
        parts.append(side(why.text_rank, "text", why.relevance, "BM25"))
    return "; ".join([*parts, f"score {why.score:.4f}"])


async def manage_keys(settings: Settings, action: str, **options: Any) -> None:
    """`hearth keys create|list|revoke`: the database only, no engines."""
    async with AsyncExitStack() as stack:
        keys = ApiKeys(await open_database(settings, stack))
        if action == "create":
            if options.get("owner_id"):  # an email or an id, of an existing account
                owner = await Users(keys.database).principal(options["owner_id"])
                options["owner_id"] = owner.user_id if owner else None
            created = await keys.create(LOCAL_USER, KeyCreate(**options), everyone=True)
            click.echo(created.key)
            click.echo(
                f"created {created.prefix} ({created.name}); the key is shown only "
                "once, keep it now",
                err=True,
            )
        elif action == "list":
            rows = await keys.list(LOCAL_USER, everyone=True)
            for key in rows:
                state = "revoked" if key.revoked_at else "active"
                limits = ", ".join(
                    f"{name}={value}"
                    for name, value in (
                        ("rpm", key.requests_per_minute),
                        ("tpm", key.tokens_per_minute),
                        ("concurrent", key.max_concurrent),
                    )
                    if value
                )
                models = ",".join(key.models) if key.models else "all models"
                click.echo(
                    f"{key.prefix}  {state:8} {key.name}  owner={key.owner_id}  "
                    f"{models}  {limits}".rstrip()
                )
            if not rows:
                click.echo("no keys")
        else:
            await keys.revoke(LOCAL_USER, options["key"], everyone=True)
            click.echo(f"revoked {options['key']}")


async def manage_users(settings: Settings, action: str, **options: Any) -> None:
    """`hearth users create|invite|list`: the database only, no engines."""
    async with AsyncExitStack() as stack:
        users = Users(await open_database(settings, stack))
        if action in ("create", "invite"):
            try:
                body = UserCreate(
                    email=options["email"],
                    name=options["name"],
                    password=options.get("password"),
                    role="admin" if options["admin"] else "user",
                )
            except ValidationError as exc:
                raise InvalidRequest(f"{options['email']!r}: not an email address") from exc
            user = await users.create(body, status="active" if body.password else "pending")
            click.echo(f"created {user.role} {user.email} ({user.id})")
            if user.invitation_link:
                click.echo(
                    f"invitation link (shown once; send it to {user.email} only): "
                    f"{settings.public_url}{user.invitation_link}"
                )
        else:
            rows = await users.list(limit=10_000)
            for user in rows:
                click.echo(f"{user.email}  {user.role:5}  {user.status:8}  {user.name}")
            if not rows:
                click.echo("no users")
