"""The embedded PostgreSQL: pgvector works, migrations are idempotent, data survives a restart,
and it runs with settings sized to the machine and the data."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hearth.db.embedded import SETTINGS_FILE, EmbeddedPostgres, server_settings
from hearth.db.migrate import head_revision, upgrade
from hearth.db.session import Database
from hearth.observability.logging import ConsoleFormatter, JsonFormatter


def test_migrated_database_has_pgvector(database_url: str) -> None:
    async def check() -> tuple[str, str, float]:
        db = Database(database_url, pool_size=1)
        try:
            async with db.session() as session:
                version = (
                    await session.execute(
                        text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                    )
                ).scalar_one()
                revision = (
                    await session.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar_one()
                distance = (
                    await session.execute(text("SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector"))
                ).scalar_one()
            again = await upgrade(db)  # a second run finds nothing to do
            assert again == revision
            return version, revision, distance
        finally:
            await db.close()

    version, revision, distance = asyncio.run(check())
    assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 8)
    assert revision == head_revision()
    assert distance == 1.0


def test_data_survives_a_restart(tmp_path: Path) -> None:
    async def write_then_read() -> list[str]:
        first = EmbeddedPostgres(tmp_path)
        db = Database(await first.start(), pool_size=1)
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE marker (note text)"))
            await conn.execute(text("INSERT INTO marker VALUES ('kept')"))
        await db.close()
        await first.stop()

        second = EmbeddedPostgres(tmp_path)
        db = Database(await second.start(), pool_size=1)
        try:
            async with db.session() as session:
                return list((await session.execute(text("SELECT note FROM marker"))).scalars())
        finally:
            await db.close()
            await second.stop()

    assert asyncio.run(write_then_read()) == ["kept"]


def test_server_settings_follow_the_data_within_memory() -> None:
    mb, gb = 2**20, 2**30
    assert server_settings(24 * gb, 0)["shared_buffers"] == "128MB"  # initdb's default
    assert server_settings(24 * gb, 400 * mb)["shared_buffers"] == "500MB"
    assert server_settings(8 * gb, 5 * gb)["shared_buffers"] == "2048MB"  # a quarter of memory
    assert server_settings(128 * gb, 100 * gb)["shared_buffers"] == "8192MB"
    assert server_settings(256 * mb, 5 * gb)["shared_buffers"] == "128MB"
    small = server_settings(24 * gb, 0)
    assert small["effective_cache_size"] == "12288MB"
    assert (small["random_page_cost"], small["jit"]) == ("1.1", "off")


def test_the_session_server_runs_with_hearths_settings(database_url: str) -> None:
    async def show() -> dict[str, str]:
        db = Database(database_url, pool_size=1)
        try:
            async with db.session() as session:
                return {
                    name: (await session.execute(text(f"SHOW {name}"))).scalar_one()
                    for name in ("random_page_cost", "jit", "shared_buffers")
                }
        finally:
            await db.close()

    shown = asyncio.run(show())
    assert (shown["random_page_cost"], shown["jit"]) == ("1.1", "off")


def test_settings_are_rewritten_at_each_start_and_alter_system_wins(tmp_path: Path) -> None:
    async def shared_buffers(url: str, alter: str | None = None) -> str:
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            if alter:
                await conn.execute(f"ALTER SYSTEM SET shared_buffers = '{alter}'")
            return await conn.fetchval("SHOW shared_buffers")
        finally:
            await conn.close()

    async def run() -> list[str]:
        seen = []
        for settings, alter in (
            ({"shared_buffers": "144MB"}, None),
            ({"shared_buffers": "160MB"}, "176MB"),  # hearth.conf rewritten; then ALTER SYSTEM
            ({"shared_buffers": "160MB"}, None),
        ):
            server = EmbeddedPostgres(tmp_path, settings=settings)
            seen.append(await shared_buffers(await server.start(), alter))
            await server.stop()
        assert (tmp_path / "postgres" / SETTINGS_FILE).read_text().count("shared_buffers") == 1
        return seen

    assert asyncio.run(run()) == ["144MB", "160MB", "176MB"]


def test_a_failed_statement_is_logged_without_its_values(database_url: str) -> None:
    """Statement errors reach the log; the values bound to them (users' messages and
    documents), which the driver's own message quotes, must not."""

    secret = "-".join(("my", "secret", "note"))  # not in the source the traceback quotes

    async def fail() -> DBAPIError:
        database = Database(database_url, pool_size=1)
        try:
            async with database.session() as session:
                await session.execute(text("SELECT CAST(:v AS integer)"), {"v": secret})
        except DBAPIError as exc:
            return exc
        finally:
            await database.close()
        raise AssertionError("the statement should have failed")

    error = asyncio.run(fail())
    assert secret in str(error)  # what the driver says, and so what must not be logged
    record = logging.makeLogRecord(
        {"msg": "unhandled error", "levelno": logging.ERROR, "levelname": "ERROR"}
    )
    record.exc_info = (type(error), error, error.__traceback__)
    for formatter in (JsonFormatter(), ConsoleFormatter()):
        line = formatter.format(record)
        record.exc_text = None  # logging caches the formatted traceback on the record
        assert secret not in line
        assert "SELECT CAST($1 AS integer)" in line and "DataError" in line


def test_a_holder_killed_by_sigkill_does_not_keep_the_server_running(tmp_path: Path) -> None:
    """`hearth up` killed with kill -9 leaves its PID among the server's holders; the next
    Hearth on that data directory must still stop the server when it stops, and say so."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import asyncio, sys; from pathlib import Path;"
            "from hearth.db.embedded import EmbeddedPostgres;"
            "asyncio.run(EmbeddedPostgres(Path(sys.argv[1])).start()); print('up', flush=True);"
            "import time; time.sleep(120)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
    holder.kill()
    holder.wait()
    holder.stdout.close()
    postmaster = int((tmp_path / "postgres" / "postmaster.pid").read_text().split()[0])

    async def attach_and_stop() -> None:
        embedded = EmbeddedPostgres(tmp_path)
        await embedded.start()  # the server the dead process left running
        await embedded.stop()

    asyncio.run(attach_and_stop())
    for _ in range(100):
        try:
            os.kill(postmaster, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError("the embedded PostgreSQL kept running after the last Hearth stopped")
