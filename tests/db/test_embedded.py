"""The embedded PostgreSQL: pgvector works, migrations are idempotent, data survives a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from hearth.db.embedded import EmbeddedPostgres
from hearth.db.migrate import head_revision, upgrade
from hearth.db.session import Database


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
