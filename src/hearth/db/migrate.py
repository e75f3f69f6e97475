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
    # Held until the migration's transaction ends, whether it commits or fails.
    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    command.upgrade(alembic_config(connection), "head")


def head_revision() -> str | None:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def execute_script(connection: Connection, sql: str) -> None:
    """Run a multi-statement SQL script (e.g. a library's schema) inside a migration.

    asyncpg prepares every statement SQLAlchemy sends, and a prepared statement holds one
    command; its own `execute()` without arguments takes a whole script."""
    from sqlalchemy.util import await_only

    driver = connection.connection.driver_connection
    await_only(driver.execute(sql))


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(database: Database) -> str | None:
    """Bring the schema to the newest revision; return that revision."""
    async with database.engine.connect() as conn:
        await conn.run_sync(_upgrade)
        await conn.commit()
        return await conn.run_sync(_current)
