"""The job queue: procrastinate on the same PostgreSQL, so there is no other service to run.

`hearth up` runs a worker inside its process; `hearth worker` runs one alone (scale those
horizontally). Jobs live in the database, so they survive restarts; a job whose worker died
(no heartbeat) is put back in the queue when a worker starts, and failing jobs are retried
with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

from procrastinate import App, JobContext, PsycopgConnector, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.engine import make_url

from hearth.http.background import BackgroundTask

log = logging.getLogger(__name__)

INGEST_QUEUE = "ingest"
INGEST_TASK = "hearth.ingest_document"
BENCH_QUEUE = "bench"
BENCH_TASK = "hearth.bench_run"
MAX_ATTEMPTS = 5
_RETRY = RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=2)

IngestFn = Callable[[uuid.UUID, bool], Awaitable[None]]
BenchFn = Callable[[uuid.UUID], Awaitable[None]]


def libpq_url(database_url: str) -> str:
    """The same database as a libpq URL (procrastinate speaks psycopg, not asyncpg)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class JobQueue:
    def __init__(self, database_url: str, ingest: IngestFn, *, stalled_after: float = 30.0) -> None:
        self.app = App(connector=PsycopgConnector(conninfo=libpq_url(database_url)))
        self._worker = BackgroundTask("hearth-worker")
        # A worker that sent no heartbeat for `stalled_after` seconds is dead: its job goes
        # back in the queue. Heartbeats come three times in that span, checks once.
        self.stalled_after = stalled_after
        self._sweeps: list[Callable[[], Awaitable[object]]] = []
        self._bench: BenchFn | None = None

        @self.app.task(name=INGEST_TASK, queue=INGEST_QUEUE, retry=_RETRY, pass_context=True)
        async def ingest_document(context: JobContext, document_id: str) -> None:
            attempts = context.job.attempts if context.job else 0
            await ingest(uuid.UUID(document_id), attempts + 1 >= MAX_ATTEMPTS)

        # A benchmark is not retried by the queue: a stopped one is resumed on purpose (its
        # checkpoints make that exact), a failed one says why.
        @self.app.task(name=BENCH_TASK, queue=BENCH_QUEUE)
        async def bench_run(run_id: str) -> None:
            if self._bench is None:
                raise RuntimeError("this worker runs no benchmarks")
            await self._bench(uuid.UUID(run_id))

    async def open(self) -> None:
        await self.app.open_async()

    async def close(self) -> None:
        await self.stop_worker()
        await self.app.close_async()

    async def enqueue_ingest(self, document_id: uuid.UUID) -> None:
        # The locks keep one waiting and one running ingestion per document, however often
        # it is queued (an upload and a re-index in quick succession).
        with contextlib.suppress(AlreadyEnqueued):
            await self.app.configure_task(
                INGEST_TASK, queueing_lock=f"ingest:{document_id}", lock=f"ingest:{document_id}"
            ).defer_async(document_id=str(document_id))

    def on_bench(self, run: BenchFn) -> None:
        """What runs a queued benchmark (the lab's), set before the worker starts."""
        self._bench = run

    async def enqueue_bench(self, run_id: uuid.UUID) -> None:
        # One job per run at a time: a second resume while one waits or runs is a no-op.
        with contextlib.suppress(AlreadyEnqueued):
            await self.app.configure_task(
                BENCH_TASK, queueing_lock=f"bench:{run_id}", lock=f"bench:{run_id}"
            ).defer_async(run_id=str(run_id))

    def add_sweep(self, sweep: Callable[[], Awaitable[object]]) -> None:
        """Run `sweep` with every check for stalled jobs (a feature's own repairs, such as
        queueing work whose job was never deferred)."""
        self._sweeps.append(sweep)

    async def requeue_stalled(self) -> int:
        """Put back jobs whose worker stopped sending heartbeats (it crashed or was killed)."""
        stalled = list(
            await self.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after)
        )
        for job in stalled:
            await self.app.job_manager.retry_job(job)
        if stalled:
            log.info("requeued %d stalled jobs", len(stalled))
        return len(stalled)

    async def run_worker(self, *, concurrency: int = 1) -> None:
        """Process jobs until cancelled; meanwhile, put back the jobs of dead workers."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._requeue_stalled_forever())
            group.create_task(
                self.app.run_worker_async(
                    queues=[INGEST_QUEUE, BENCH_QUEUE],
                    concurrency=concurrency,
                    install_signal_handlers=False,
                    wait=True,
                    update_heartbeat_interval=self.stalled_after / 3,
                    stalled_worker_timeout=self.stalled_after,
                )
            )

    async def _requeue_stalled_forever(self) -> None:
        while True:
            for check in (self.requeue_stalled, *self._sweeps):
                try:
                    await check()
                except Exception:  # the database may be away for a moment; try again later
                    log.warning("periodic job check %s failed", check, exc_info=True)
            await asyncio.sleep(min(self.stalled_after, 60.0))

    def start_worker(self, *, concurrency: int = 1) -> None:
        self._worker.start(self.run_worker(concurrency=concurrency))

    async def stop_worker(self) -> None:
        await self._worker.stop()
