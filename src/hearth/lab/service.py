"""The lab's logic on its tables: runs created, checkpointed, finished, read and compared."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ARRAY, Float, delete, func, literal, select, text, update

from hearth.db.session import Database
from hearth.errors import InvalidRequest, NotFound
from hearth.lab.economics import economics
from hearth.lab.imports import ImportedRun
from hearth.lab.metrics import Summary
from hearth.lab.models import BenchRequest, BenchRun, BenchStage
from hearth.lab.profiles import Stage
from hearth.lab.records import RequestRecord
from hearth.lab.runner import RunSpec, StoredStage
from hearth.lab.schemas import RunPublic, RunResults, StagePublic, StageResult

_COLUMNS = (
    "run_id",
    "stage_index",
    "index",
    "segment",
    "planned",
    "sent",
    "first",
    "end",
    "chunks",
    "status",
    "error",
    "input_tokens",
    "server_input_tokens",
    "server_output_tokens",
    "client_output_tokens",
)


class Runs:
    """Benchmark runs in PostgreSQL."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def create(
        self,
        spec: RunSpec,
        *,
        name: str,
        created_by: str,
        deployment_id: uuid.UUID | None = None,
        source: str = "hearth",
        status: str = "queued",
        run_id: uuid.UUID | None = None,
    ) -> RunPublic:
        """A new run, not started (`begin` starts or resumes it)."""
        row = BenchRun(
            id=run_id or uuid.uuid4(),
            name=name,
            created_by=created_by,
            status=status,
            source=source,
            spec=spec.model_dump(mode="json"),
            target=spec.base_url,
            model=spec.model,
            deployment_id=deployment_id,
            attempts=0,
        )
        async with self.database.session() as session, session.begin():
            session.add(row)
        return await self.get(row.id)

    async def begin(self, run_id: uuid.UUID) -> RunSpec:
        """Mark the run running (one more attempt) and return its spec. A finished run is not
        run again."""
        async with self.database.session() as session, session.begin():
            row = await session.get(BenchRun, run_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no benchmark run {run_id}")
            if row.status == "finished":
                raise InvalidRequest(f"run {run_id} is finished; start a new one", param="run")
            if row.source != "hearth":
                raise InvalidRequest(f"run {run_id} was imported, not run here", param="run")
            row.status, row.error = "running", None
            row.attempts += 1
            row.updated_at = datetime.now(UTC)
            return RunSpec.model_validate(row.spec)

    async def end(self, run_id: uuid.UUID, status: str, error: str | None = None) -> None:
        """finished, interrupted (resume it) or failed (with the reason)."""
        values: dict[str, Any] = {"status": status, "error": error, "updated_at": func.now()}
        if status == "finished":
            values["finished_at"] = func.now()
        async with self.database.session() as session, session.begin():
            await session.execute(update(BenchRun).where(BenchRun.id == run_id).values(**values))

    @contextlib.asynccontextmanager
    async def exclusive(
        self, run_id: uuid.UUID, *, waiting: Callable[[], None] | None = None
    ) -> AsyncIterator[None]:
        """Hold the run's advisory lock (a session lock on a connection of its own) while
        the block runs; another holder makes this wait, after calling `waiting`."""
        key = {"key": f"hearth.lab:{run_id}"}
        async with self.database.engine.connect() as conn:
            got = await conn.scalar(
                text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), key
            )
            if not got:
                if waiting is not None:
                    waiting()
                await conn.execute(text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"), key)
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(
                    text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), key
                )
                await conn.commit()

    def store(self, run_id: uuid.UUID) -> RunStore:
        return RunStore(self.database, run_id)

    async def find(self, run_id: uuid.UUID) -> RunPublic | None:
        try:
            return await self.get(run_id)
        except NotFound:
            return None

    async def get(self, run_id: uuid.UUID) -> RunPublic:
        async with self.database.session() as session:
            row = await session.get(BenchRun, run_id)
            if row is None:
                raise NotFound(f"no benchmark run {run_id}")
            stages = (
                await session.scalars(
                    select(BenchStage).where(BenchStage.run_id == run_id).order_by(BenchStage.index)
                )
            ).all()
            done = dict(
                (
                    await session.execute(
                        select(BenchRequest.stage_index, func.count())
                        .where(BenchRequest.run_id == run_id)
                        .group_by(BenchRequest.stage_index)
                    )
                ).all()
            )
        return _public(row, stages, done)

    async def results(self, run_id: uuid.UUID, catalog: Any) -> RunResults:
        """The run with what each valid stage costs, from the catalog (`catalog.service.
        Catalog`): its own deployment, else the deployment serving its model."""
        run = await self.get(run_id)
        deployment = None
        if run.deployment_id is not None:
            with contextlib.suppress(NotFound):  # deleted from the catalog since
                deployment = await catalog.get_deployment(run.deployment_id)
        if deployment is None:
            deployment = await catalog.find_deployment(run.model)
        costs = await catalog.deployment_costs(deployment.id) if deployment else None
        stages = []
        for stage in run.stages:
            money = None
            if costs is not None and stage.valid and stage.summary:
                money = economics(float(stage.summary.get("output_throughput") or 0), costs)
            stages.append(
                StageResult(
                    index=stage.index,
                    label=stage.label,
                    requests=int(stage.spec.get("requests") or 0),
                    valid=stage.valid,
                    summary=stage.summary,
                    economics=money,
                )
            )
        return RunResults(
            run=run, deployment=deployment.name if deployment else None, stages=stages
        )

    async def ttft_cdf(
        self, run_id: uuid.UUID, points: int = 40
    ) -> dict[int, list[tuple[float, float]]]:
        """Per stage, its successful requests' TTFT distribution as (ms, share) points,
        computed in PostgreSQL (a run may hold a million rows)."""
        shares = [round(i / points, 4) for i in range(1, points)] + [0.99]
        query = (
            select(
                BenchRequest.stage_index,
                func.percentile_cont(literal(shares, ARRAY(Float))).within_group(
                    BenchRequest.first - BenchRequest.sent
                ),
            )
            .where(
                BenchRequest.run_id == run_id,
                BenchRequest.status == 200,
                BenchRequest.error.is_(None),
                BenchRequest.first.is_not(None),
            )
            .group_by(BenchRequest.stage_index)
        )
        async with self.database.session() as session:
            rows = (await session.execute(query)).all()
        return {
            stage: [(v * 1000, q) for v, q in zip(values, shares, strict=True)]
            for stage, values in rows
        }

    async def list(self, *, limit: int = 100) -> list[RunPublic]:
        """The newest runs first, with their stages' summaries."""
        async with self.database.session() as session:
            rows = (
                await session.scalars(
                    select(BenchRun).order_by(BenchRun.created_at.desc()).limit(limit)
                )
            ).all()
            ids = [r.id for r in rows]
            stages = (
                await session.scalars(
                    select(BenchStage)
                    .where(BenchStage.run_id.in_(ids))
                    .order_by(BenchStage.run_id, BenchStage.index)
                )
            ).all()
        by_run: dict[uuid.UUID, list[BenchStage]] = {}
        for stage in stages:
            by_run.setdefault(stage.run_id, []).append(stage)
        return [_public(r, by_run.get(r.id, []), None) for r in rows]

    async def delete(self, run_id: uuid.UUID) -> None:
        async with self.database.session() as session, session.begin():
            result = await session.execute(delete(BenchRun).where(BenchRun.id == run_id))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"no benchmark run {run_id}")

    async def records(
        self, run_id: uuid.UUID, stage_index: int | None = None
    ) -> list[RequestRecord]:
        """A run's requests, in stage and schedule order (exports)."""
        query = select(BenchRequest).where(BenchRequest.run_id == run_id)
        if stage_index is not None:
            query = query.where(BenchRequest.stage_index == stage_index)
        query = query.order_by(BenchRequest.stage_index, BenchRequest.index)
        async with self.database.session() as session:
            rows = (await session.scalars(query)).all()
        return [(r.stage_index, _record(r)) for r in rows]

    async def save_imported(self, run: ImportedRun, *, created_by: str) -> RunPublic:
        """Another tool's results as a finished run, its stages' summaries as it gave them."""
        row = BenchRun(
            name=run.name[:200],
            created_by=created_by,
            status="finished",
            source=run.source,
            spec=run.spec,
            target=run.target[:2000],
            model=run.model[:200],
            attempts=0,
            finished_at=datetime.now(UTC),
        )
        async with self.database.session() as session, session.begin():
            session.add(row)
            await session.flush()
            for index, (stage, summary) in enumerate(run.stages):
                session.add(
                    BenchStage(
                        run_id=row.id,
                        index=index,
                        spec=stage.model_dump(mode="json"),
                        summary=summary.model_dump(mode="json"),
                        valid=summary.valid,
                        finished_at=row.finished_at,
                    )
                )
        return await self.get(row.id)


@dataclass
class RunStore:
    """One run's checkpoints (lab.runner.Store) in PostgreSQL."""

    database: Database
    run_id: uuid.UUID

    async def stages(self) -> list[StoredStage]:
        async with self.database.session() as session:
            rows = (
                await session.scalars(
                    select(BenchStage)
                    .where(BenchStage.run_id == self.run_id)
                    .order_by(BenchStage.index)
                )
            ).all()
        return [
            StoredStage(
                r.index,
                Stage.model_validate(r.spec),
                Summary.model_validate(r.summary) if r.summary is not None else None,
            )
            for r in rows
        ]

    async def add_stage(self, index: int, stage: Stage) -> None:
        async with self.database.session() as session, session.begin():
            session.add(
                BenchStage(run_id=self.run_id, index=index, spec=stage.model_dump(mode="json"))
            )

    async def records(self, stage_index: int) -> list[RequestRecord]:
        query = (
            select(BenchRequest)
            .where(BenchRequest.run_id == self.run_id, BenchRequest.stage_index == stage_index)
            .order_by(BenchRequest.index)
        )
        async with self.database.session() as session:
            return [_record(r) for r in (await session.scalars(query)).all()]

    async def save_records(self, stage_index: int, records: list[RequestRecord]) -> None:
        # COPY, binary through asyncpg: a batch of thousands of rows in one round trip.
        rows = [
            (
                self.run_id,
                stage_index,
                r.index,
                r.segment,
                r.planned,
                r.sent,
                r.first,
                r.end,
                r.chunks,
                r.status,
                r.error,
                r.input_tokens,
                r.server_input_tokens,
                r.server_output_tokens,
                r.client_output_tokens,
            )
            for r in records
        ]
        async with self.database.session() as session, session.begin():
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                BenchRequest.__tablename__, records=rows, columns=_COLUMNS
            )
            await session.execute(
                update(BenchRun).where(BenchRun.id == self.run_id).values(updated_at=func.now())
            )

    async def finish_stage(self, stage_index: int, summary: Summary) -> None:
        async with self.database.session() as session, session.begin():
            await session.execute(
                update(BenchStage)
                .where(BenchStage.run_id == self.run_id, BenchStage.index == stage_index)
                .values(
                    summary=summary.model_dump(mode="json"),
                    valid=summary.valid,
                    finished_at=func.now(),
                )
            )


def _record(r: BenchRequest) -> RequestRecord:
    return RequestRecord(
        index=r.index,
        planned=r.planned,
        sent=r.sent,
        first=r.first,
        end=r.end,
        chunks=list(r.chunks),
        status=r.status,
        error=r.error,
        input_tokens=r.input_tokens,
        server_input_tokens=r.server_input_tokens,
        server_output_tokens=r.server_output_tokens,
        client_output_tokens=r.client_output_tokens,
        segment=r.segment,
    )


def _public(row: BenchRun, stages: Any, done: dict[int, int] | None) -> RunPublic:
    return RunPublic(
        id=row.id,
        name=row.name,
        status=row.status,
        source=row.source,
        target=row.target,
        model=row.model,
        deployment_id=row.deployment_id,
        error=row.error,
        attempts=row.attempts,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        spec=row.spec,
        stages=[
            StagePublic(
                index=s.index,
                label=Stage.model_validate(s.spec).label(),
                spec=s.spec,
                summary=s.summary,
                valid=s.valid,
                recorded=(done or {}).get(s.index),
            )
            for s in stages
        ],
    )
