"""The `hearth` command: a thin layer over Settings, create_app() and the services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from hearth import __version__
from hearth.catalog.cli import catalog as catalog_commands
from hearth.config import Settings
from hearth.errors import ConfigError
from hearth.lab.cli import bench as bench_commands
from hearth.observability.logging import configure_logging

log = logging.getLogger("hearth")


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_settings(**overrides: Any) -> Settings:
    """Settings from flags (non-None overrides), environment and config file; readable errors."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"bad configuration: {problems}")
    except ValueError as exc:
        _fail(f"bad configuration: {exc}")


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--host", help="Address to listen on [default: 127.0.0.1]."),
            click.option("--port", type=int, help="Port to listen on [default: 8080]."),
            click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory."),
        ]
    ):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hearth")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True),
    help="TOML configuration file (same keys as the HEARTH_* variables).",
)
def main(config_file: str | None) -> None:
    """Hearth: a self-hosted LLM platform."""
    if config_file:
        os.environ["HEARTH_CONFIG"] = config_file


@main.command()
@_common
def up(host: str | None, port: int | None, data_dir: str | None) -> None:
    """Run everything in one process: embedded PostgreSQL (unless HEARTH_DATABASE_URL is set),
    the local model, web UI and API."""
    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir}
    if "HEARTH_LOG_FORMAT" not in os.environ:
        overrides["log_format"] = "console"
    settings = load_settings(**overrides)

    def ready(models: list[str]) -> None:
        url = settings.public_url
        click.echo(
            f"\nHearth is ready.\n  Chat in the browser:  {url}/\n"
            f"  OpenAI-compatible API: {url}/v1  (models: {', '.join(models) or 'none'})\n"
            f"  Data directory:       {settings.data_dir}\n  Stop with Ctrl-C.\n",
            err=True,
        )

    _run(settings, on_ready=ready)


@main.command()
@_common
def serve(host: str | None, port: int | None, data_dir: str | None) -> None:
    """Run the web UI, REST API and gateway against an external PostgreSQL (stateless;
    run as many replicas as you like). Needs HEARTH_DATABASE_URL."""
    settings = load_settings(host=host, port=port, data_dir=data_dir)
    if settings.database_url is None:
        _fail("hearth serve needs HEARTH_DATABASE_URL; `hearth up` runs an embedded PostgreSQL")
    _run(settings, run_worker=False)


ENGINE_PORT = 8081


@main.command()
@_common
def engine(host: str | None, port: int | None, data_dir: str | None) -> None:
    """Serve the local engines (llama.cpp chat models, the embedder; HEARTH_ENGINES) as an
    OpenAI-compatible server, for `hearth serve` to reach as an `openai` engine. Listens
    on port 8081 unless told otherwise; off loopback it needs HEARTH_ENGINE_API_KEY."""
    settings = load_settings(host=host, port=port, data_dir=data_dir)
    if "port" not in settings.model_fields_set:
        settings.port = ENGINE_PORT  # beside `hearth serve` on 8080 without a clash
    from hearth.engine_server.app import create_engine_app

    def ready(models: list[str]) -> None:
        click.echo(
            f"hearth engine is ready on {settings.public_url}/v1 (models: {', '.join(models)})",
            err=True,
        )

    _run(settings, build=lambda: create_engine_app(settings, on_ready=ready))


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory.")
def migrate(data_dir: str | None) -> None:
    """Apply database migrations and print the schema revision."""
    settings = load_settings(data_dir=data_dir)
    configure_logging("warning", "console")
    try:
        revision = asyncio.run(_migrate(settings))
    except (ConfigError, OSError) as exc:
        _fail(f"cannot migrate: {exc}", 1)
    click.echo(f"database schema at revision {revision}")


async def _migrate(settings: Settings) -> str | None:
    from hearth.db.migrate import upgrade
    from hearth.server import open_database

    async with AsyncExitStack() as stack:
        database = await open_database(settings, stack, run_migrations=False)
        return await upgrade(database)


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    help="Documents ingested at once [default: the ingest_concurrency setting, 2].",
)
@click.option(
    "--health-port",
    type=click.IntRange(1, 65535),
    help="Serve /healthz, /readyz and /metrics on this port (HEARTH_HOST's address).",
)
def worker(data_dir: str | None, concurrency: int | None, health_port: int | None) -> None:
    """Run a background job worker (document ingestion) until Ctrl-C or SIGTERM."""
    settings = load_settings(data_dir=data_dir)
    concurrency = concurrency or settings.ingest_concurrency
    configure_logging(settings.log_level, settings.log_format)
    from hearth.commands import run_worker

    _run_command(run_worker(settings, concurrency, health_port))


_AS_HELP = (
    "The account to act as (an email or id); the collection is theirs. Default: the first admin."
)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--collection", "-c", required=True, help="Collection name (created if missing).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory.")
@click.option("--as", "who", metavar="EMAIL", help=_AS_HELP)
def ingest(paths: tuple[str, ...], collection: str, data_dir: str | None, who: str | None) -> None:
    """Add files to a collection and index them; a folder is ingested recursively."""
    settings = load_settings(data_dir=data_dir)
    configure_logging("warning", "console")
    from hearth.commands import ingest_paths

    failed = _run_command(ingest_paths(settings, [Path(p) for p in paths], collection, who))
    if failed:
        sys.exit(1)


@main.command()
@click.argument("query")
@click.option("--collection", "-c", required=True, help="Collection name.")
@click.option(
    "--mode", type=click.Choice(["hybrid", "vector", "text"]), default="hybrid", show_default=True
)
@click.option(
    "-k", type=click.IntRange(1, 100), default=5, show_default=True, help="Results to show."
)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory.")
@click.option("--as", "who", metavar="EMAIL", help=_AS_HELP)
@click.option(
    "--explain", is_flag=True, help="Show each result's rank on each side and its scores."
)
def search(
    query: str,
    collection: str,
    mode: str,
    k: int,
    data_dir: str | None,
    who: str | None,
    explain: bool,
) -> None:
    """Search a collection and print the best passages with their citations."""
    settings = load_settings(data_dir=data_dir)
    configure_logging("warning", "console")
    from hearth.commands import search_collection

    _run_command(search_collection(settings, collection, query, mode, k, who, explain))


def _run_command(coro: Any) -> Any:
    from hearth.errors import HearthError

    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except HearthError as exc:
        _fail(exc.message, 1)
    except (ConfigError, OSError) as exc:
        _fail(str(exc), 1)


@main.group()
def keys() -> None:
    """Create, list and revoke API keys for /v1."""


@keys.command("create")
@click.argument("name")
@click.option("--model", "models", multiple=True, help="Allowed model (repeat); default: all.")
@click.option("--owner", "owner_id", help="Account the key belongs to (email or id).")
@click.option("--team", "team_id", help="Team the key belongs to.")
@click.option("--rpm", "requests_per_minute", type=click.IntRange(1), help="Requests/minute.")
@click.option("--tpm", "tokens_per_minute", type=click.IntRange(1), help="Tokens/minute.")
@click.option("--concurrency", "max_concurrent", type=click.IntRange(1), help="Requests at once.")
@click.option("--expires-in-days", type=click.IntRange(1), help="Days until it expires.")
@click.option(
    "--cache",
    "cache_responses",
    is_flag=True,
    help="Answer identical temperature-0 requests from the response cache.",
)
def keys_create(
    name: str, models: tuple[str, ...], expires_in_days: int | None, **limits: Any
) -> None:
    """Create a key and print it (once: only its hash is kept)."""
    from datetime import UTC, datetime, timedelta

    from hearth.commands import manage_keys

    expires = (datetime.now(UTC) + timedelta(days=expires_in_days)) if expires_in_days else None
    _run_command(
        manage_keys(
            _quiet_settings(),
            "create",
            name=name,
            models=list(models) or None,
            expires_at=expires,
            **limits,
        )
    )


@keys.command("list")
def keys_list() -> None:
    """List every key: prefix, state, owner, models, limits (never the secret)."""
    from hearth.commands import manage_keys

    _run_command(manage_keys(_quiet_settings(), "list"))


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke a key by prefix (hk-...) or id; refused everywhere within a second."""
    from hearth.commands import manage_keys

    _run_command(manage_keys(_quiet_settings(), "revoke", key=key))


@main.group()
def users() -> None:
    """Create and list accounts (for headless set-up; the web sign-up does the same)."""


@users.command("create")
@click.argument("email")
@click.option("--name", default="", help="Display name (default: the email's local part).")
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (otherwise you are prompted).",
)
def users_create(email: str, name: str, admin: bool, password_stdin: bool) -> None:
    """Create an active account, e.g. the first admin: `hearth users create --admin EMAIL`."""
    from hearth.commands import manage_users

    if password_stdin:
        password = click.get_text_stream("stdin").readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _run_command(
        manage_users(
            _quiet_settings(), "create", email=email, name=name, password=password, admin=admin
        )
    )


@users.command("invite")
@click.argument("email")
@click.option("--name", default="", help="Display name (default: the email's local part).")
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
def users_invite(email: str, name: str, admin: bool) -> None:
    """Create an account without a password and print its invitation link: the person sets
    their password through it (valid once, for 7 days)."""
    from hearth.commands import manage_users

    _run_command(manage_users(_quiet_settings(), "invite", email=email, name=name, admin=admin))


@users.command("list")
def users_list() -> None:
    """List accounts: email, role, status."""
    from hearth.commands import manage_users

    _run_command(manage_users(_quiet_settings(), "list"))


main.add_command(catalog_commands)
main.add_command(bench_commands)


def _quiet_settings() -> Settings:
    settings = load_settings()
    configure_logging("warning", "console")
    return settings


@main.command()
@click.option(
    "--prepare",
    is_flag=True,
    help="Build the files the local embedders need (their ONNX files, into "
    "HEARTH_MODELS_DIR) and exit: for an image build or an init container.",
)
def models(prepare: bool) -> None:
    """List the models the configuration serves, with their engines."""
    settings = load_settings()
    from hearth.engines.base import build_engine

    try:
        engines = [build_engine(config) for config in settings.engines]
    except ConfigError as exc:
        _fail(str(exc))
    if prepare:
        configure_logging("warning", "console")
        embedders = [e for e in engines if e.kind == "embedder"]
        _run_command(_prepare(embedders))
        for engine in embedders:
            click.echo(f"prepared {engine.name}: {', '.join(m.name for m in engine.models())}")
        return
    rows = [
        (m.name, m.type, e.name, e.kind, str(getattr(m, "path", None) or m.upstream_name))
        for e in engines
        for m in e.models()
    ]
    for engine in engines:
        if not engine.models():
            rows.append(("(discovered at start)", "", engine.name, engine.kind, ""))
    widths = [
        max(len(r[i]) for r in [*rows, ("MODEL", "TYPE", "ENGINE", "KIND", "SOURCE")])
        for i in range(5)
    ]
    for row in [("MODEL", "TYPE", "ENGINE", "KIND", "SOURCE"), *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


async def _prepare(engines: list[Any]) -> None:
    for engine in engines:
        await engine.start()  # builds what is missing in the cache folder
        await engine.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "the port is in use" if exc.errno == 98 else exc.strerror
        _fail(f"cannot listen on {host}:{port}: {reason} (choose another with --port)", 1)
    sock.set_inheritable(True)
    return sock


def _server_class() -> type:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT after a graceful shutdown, so the process would
        end "killed by signal"; a clean shutdown should exit with status 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()

    return GracefulServer


def _run(
    settings: Settings,
    on_ready: Callable[[list[str]], None] | None = None,
    run_worker: bool = True,
    build: Callable[[], Any] | None = None,
) -> None:
    """Serve the app `build` makes (default: Hearth's, `create_app`) until SIGTERM/Ctrl-C."""
    import uvicorn

    from hearth.http.protocol import HttpProtocol

    configure_logging(settings.log_level, settings.log_format)
    if build is None:
        from hearth.server import create_app

        def build() -> Any:
            return create_app(settings, on_ready=on_ready, run_worker=run_worker)

    try:
        app = build()
    except ConfigError as exc:
        _fail(str(exc))
    sock = _bind(settings.host, settings.port)
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="on",
        http=HttpProtocol,  # httptools, a response's head and body in one write
        ws="none",  # Hearth serves no WebSockets
        loop="auto",
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    server = _server_class()(config)
    # Starlette reports a failed start-up as a traceback; we print the cause in one line.
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: not record.getMessage().startswith("Traceback")
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    error = getattr(app.state, "startup_error", None)
    if error is not None:
        _fail(f"Hearth could not start: {error}", 1)
    if not server.started:
        _fail("Hearth could not start (see the log above)", 1)
