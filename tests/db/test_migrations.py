"""The migrations build exactly the schema the models declare."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hearth.accounts import models as _accounts_models  # noqa: F401  (registers the tables)
from hearth.admin import models as _admin_models  # noqa: F401
from hearth.catalog import models as _catalog_models  # noqa: F401
from hearth.chat import models as _chat_models  # noqa: F401
from hearth.db.base import Base
from hearth.db.session import Database
from hearth.gateway import models as _gateway_models  # noqa: F401
from hearth.lab import models as _lab_models  # noqa: F401
from hearth.presets import models as _presets_models  # noqa: F401
from hearth.rag import models as _rag_models  # noqa: F401

# Tables of the job queue come from procrastinate's own schema, not from our models.
_FOREIGN_PREFIX = "procrastinate_"


def test_models_match_migrations(database_url: str) -> None:
    def diff(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": lambda name, type_, parent: (
                    not (
                        (type_ == "table" and (name or "").startswith(_FOREIGN_PREFIX))
                        or name == "alembic_version"
                    )
                )
            },
        )
        return compare_metadata(context, Base.metadata)

    async def run() -> list:
        database = Database(database_url, pool_size=1)
        try:
            async with database.engine.connect() as conn:
                return await conn.run_sync(diff)
        finally:
            await database.close()

    assert asyncio.run(run()) == []
