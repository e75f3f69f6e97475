"""The async SQLAlchemy engine and session factory, created once per process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def async_url(url: str) -> str:
    """Accept the usual postgres:// and postgresql:// spellings; use the asyncpg driver."""
    for prefix in (
        "postgres://",
        "postgresql://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        server_settings: dict[str, str] | None = None,
        on_connect: Callable[[Any], Awaitable[None]] | None = None,
    ) -> None:
        """`server_settings` go with each new connection's start-up packet; `on_connect`
        (given the asyncpg connection) runs once on it, for settings that need a query."""
        self.url = async_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=pool_size,
            # No ping before each checkout: it would double the round trips of every page.
            # A connection the server dropped fails one statement and leaves the pool;
            # recycling keeps them from going stale behind firewalls and proxies.
            pool_recycle=300,
            # A failed statement's error names the statement, never its parameters: they
            # hold users' messages and documents, which must not reach the log.
            hide_parameters=True,
            # Sent once when each pooled connection opens: no round trip per query.
            connect_args={"server_settings": server_settings or {}},
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Reads that need no transaction: no BEGIN before and no ROLLBACK after, so a page's
        # query is one round trip, not three.
        self._readers = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        # Statements sent, for the metric `hearth_db_statements_total` (pages are held to a
        # few round trips each; the web benchmark reads this).
        self.statements = 0
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._count)
        if on_connect is not None:
            event.listen(
                self.engine.sync_engine,
                "connect",
                lambda dbapi_connection, _record: dbapi_connection.run_async(on_connect),
            )

    def _count(self, *_args: object) -> None:
        self.statements += 1

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for one or more reads without a transaction (each statement sees the
        latest committed data); never write through it."""
        async with self._readers() as session:
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
