"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per test,
and one running Hearth (real llama.cpp model, real embedder) for the API tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from hearth.config import Settings
from hearth.db.embedded import EmbeddedPostgres
from hearth.db.migrate import upgrade
from hearth.db.session import Database
from hearth.server import create_app
from tests._accounts import close_clients
from tests._server import Running, running

TEMPLATE = "hearth_template"


class PostgresForTests:
    """The session's embedded server, and a migrated template to copy databases from."""

    def __init__(self, root: Path) -> None:
        self.embedded = EmbeddedPostgres(root)

    async def start(self) -> None:
        await self.embedded.start()
        await self.execute(f"CREATE DATABASE {TEMPLATE}")
        database = Database(self.url(TEMPLATE), pool_size=1)
        try:
            await upgrade(database)
        finally:
            await database.close()

    def url(self, name: str) -> str:
        return self.embedded.url(name)

    async def execute(self, sql: str, database: str = "postgres") -> None:
        conn = await asyncpg.connect(self.url(database).replace("+asyncpg", ""))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def new_database(self) -> str:
        """A fresh, migrated database (a copy of the template); returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        asyncio.run(self.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
        return self.url(name)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresForTests]:
    pg = PostgresForTests(tmp_path_factory.mktemp("pg"))
    asyncio.run(pg.start())
    yield pg
    asyncio.run(pg.embedded.stop())


@pytest.fixture
def database_url(postgres: PostgresForTests) -> str:
    """Isolation between tests: each test that asks gets its own database."""
    return postgres.new_database()


@pytest.fixture(scope="session")
def hearth_settings(
    postgres: PostgresForTests, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("data"),
        max_request_bytes=64 * 1024,
        chat_import_max_bytes=256 * 1024,
    )


@pytest.fixture(scope="session")
def hearth(hearth_settings: Settings) -> Iterator[Running]:
    """A running Hearth with the default engines and a job worker."""
    with running(create_app(hearth_settings)) as server:
        yield server


@pytest.fixture(scope="session")
def base_url(hearth: Running) -> str:
    return hearth.url


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    # Lets fixtures see whether the test failed (the browser tests screenshot on failure).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _close_signed_in_clients() -> Iterator[None]:
    yield
    close_clients()
