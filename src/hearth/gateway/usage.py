"""Usage rows, written off the request path in batches.

A request only appends its row to an in-memory buffer; a background task inserts the buffer
every second (or sooner when it fills) in one statement. If PostgreSQL is briefly away, the
rows wait in the buffer and go in later; the buffer is bounded, and what does not fit is
dropped and counted in `hearth_usage_dropped_total` rather than slowing requests down or
growing memory without end. Rows still buffered at shutdown are flushed.

A stream's usage is recorded twice: an estimate when it starts (`estimated`, status 0) and
its real row when it ends, both with the stream's `call_id`. The real row replaces the
estimate: in the buffer when both are there (most streams end within a flush), else by a
DELETE in the transaction that writes it. A replica killed mid-stream so leaves the estimate
in the table (if it had been flushed, a second after the start), never no row at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, text

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
    call_id: uuid.UUID | None = None  # ties a stream's estimate to its real row
    estimated: bool = False
    end_user: str | None = None  # the request's `user` (hearth.gateway.identifiers)


_FIELDS = tuple(f.name for f in fields(Usage))
_COLUMNS = (*_FIELDS, "created_at")
_CALL, _ESTIMATED = _FIELDS.index("call_id"), _FIELDS.index("estimated")
_SETTLE = text("DELETE FROM usage_record WHERE estimated AND call_id = ANY(:ids)")


class UsageRecorder:
    def __init__(self, metrics: Metrics, *, capacity: int = 100_000) -> None:
        self.metrics = metrics
        self.capacity = capacity
        self._rows: deque[tuple[object, ...]] = deque()
        self._wake = asyncio.Event()
        self._task = BackgroundTask("hearth-usage")
        self._database: Database | None = None
        self._estimates_written: set[uuid.UUID] = set()  # in the table, real row to come

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
            batch, settled = self._settle(batch)
            try:
                await self._copy(batch, settled)
            except Exception as exc:
                self._rows.extendleft(reversed(batch))
                log.warning("usage rows kept for later: %s", exc)
                break
            self._estimates_written -= settled
            self._estimates_written.update(row[_CALL] for row in batch if row[_ESTIMATED])  # type: ignore[misc]
            written += len(batch)
            self.metrics.usage_written.inc(len(batch))
        return written

    def _settle(
        self, batch: list[tuple[object, ...]]
    ) -> tuple[list[tuple[object, ...]], set[uuid.UUID]]:
        """The batch without the estimates its real rows replace, and the estimates already
        in the table that they replace."""
        finals = {row[_CALL] for row in batch if row[_CALL] is not None and not row[_ESTIMATED]}
        if not finals:
            return batch, set()
        kept = [row for row in batch if not (row[_ESTIMATED] and row[_CALL] in finals)]
        return kept, finals & self._estimates_written  # type: ignore[operator]

    async def _copy(self, batch: list[tuple[object, ...]], settled: set[uuid.UUID]) -> None:
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
            if settled:
                await session.execute(_SETTLE, {"ids": list(settled)})

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
