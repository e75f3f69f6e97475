"""Usage rows, written off the request path in batches.

A request only appends its row to an in-memory buffer; a background task inserts the buffer
every second (or sooner when it fills) in one statement. If PostgreSQL is briefly away, the
rows wait in the buffer and go in later; the buffer is bounded, and what does not fit is
dropped and counted in `hearth_usage_dropped_total` rather than slowing requests down or
growing memory without end. Rows still buffered at shutdown are flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from hearth.db.session import Database
from hearth.gateway.models import UsageRecord
from hearth.http.background import BackgroundTask
from hearth.observability.metrics import Metrics

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
BATCH = 1000
RETENTION_CHECK_SECONDS = 3600.0


@dataclass(frozen=True)
class Usage:
    model: str
    deployment: str
    endpoint: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    ttft_ms: float | None = None
    key_id: uuid.UUID | None = None
    owner_id: str | None = None
    cost: float = 0.0


_FIELDS = tuple(f.name for f in fields(Usage))
_COLUMNS = (*_FIELDS, "created_at")


class UsageRecorder:
    def __init__(self, metrics: Metrics, *, capacity: int = 100_000) -> None:
        self.metrics = metrics
        self.capacity = capacity
        self._rows: deque[tuple[object, ...]] = deque()
        self._wake = asyncio.Event()
        self._task = BackgroundTask("hearth-usage")
        self._database: Database | None = None

    def record(self, usage: Usage) -> None:
        """Queue one row; never waits, never raises."""
        if len(self._rows) >= self.capacity:
            self.metrics.usage_dropped.inc()
            return
        # A plain tuple in COPY's column order: `asdict` alone cost more than the rest of
        # the gateway's bookkeeping for a request.
        self._rows.append((*(getattr(usage, name) for name in _FIELDS), datetime.now(UTC)))
        if len(self._rows) >= BATCH:
            self._wake.set()

    def start(self, database: Database, *, retention_days: int) -> None:
        self._database = database
        self._task.start(self._run(retention_days))

    async def close(self) -> None:
        await self._task.stop()
        await self.flush()

    async def flush(self) -> int:
        """Insert what is buffered; on failure keep it for the next try. Returns rows written."""
        written = 0
        while self._rows and self._database is not None:
            batch = [self._rows.popleft() for _ in range(min(BATCH, len(self._rows)))]
            try:
                await self._copy(batch)
            except Exception as exc:
                self._rows.extendleft(reversed(batch))
                log.warning("usage rows kept for later: %s", exc)
                break
            written += len(batch)
            self.metrics.usage_written.inc(len(batch))
        return written

    async def _copy(self, batch: list[tuple[object, ...]]) -> None:
        # PostgreSQL's COPY (binary, through asyncpg) rather than an INSERT of many rows:
        # SQLAlchemy's bulk insert spent about a millisecond of CPU per row here, more than
        # serving the request the row describes.
        assert self._database is not None
        async with self._database.session() as session, session.begin():
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                UsageRecord.__tablename__, records=batch, columns=_COLUMNS
            )

    async def delete_older_than(self, days: int) -> int:
        """Retention: drop rows older than `days`."""
        assert self._database is not None
        cutoff = datetime.now(UTC) - timedelta(days=days)
        async with self._database.session() as session, session.begin():
            result = await session.execute(
                delete(UsageRecord).where(UsageRecord.created_at < cutoff)
            )
        return result.rowcount  # type: ignore[attr-defined, no-any-return]

    async def _run(self, retention_days: int) -> None:
        next_cleanup = 0.0
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            await self.flush()
            if loop.time() >= next_cleanup:
                next_cleanup = loop.time() + RETENTION_CHECK_SECONDS
                try:
                    deleted = await self.delete_older_than(retention_days)
                except Exception as exc:
                    log.warning("usage retention skipped: %s", exc)
                else:
                    if deleted:
                        log.info(
                            "deleted %d usage rows older than %d days", deleted, retention_days
                        )
