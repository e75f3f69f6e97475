"""Apply Alembic migrations, at start-up and from `hearth migrate`.

Several replicas may start at once: a PostgreSQL advisory lock makes them take turns,
and the ones that come second find nothing left to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from hearth.db.session import Database

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x4845415254  # "HEART"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
    try:
        command.upgrade(alembic_config(connection), "head")
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(database: Database) -> str | None:
    """Bring the schema to the newest revision; return that revision."""
    async with database.engine.connect() as conn:
        await conn.run_sync(_upgrade)
        await conn.commit()
        return await conn.run_sync(_current)
