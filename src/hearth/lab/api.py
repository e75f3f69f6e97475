"""Lab routes (`/api/lab/...`): benchmark runs. Anyone signed in reads results; admins start,
resume, import and delete runs (a benchmark puts load on the platform)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response, UploadFile, status

from hearth.accounts.auth import AdminDep, CallerDep
from hearth.errors import InvalidRequest, RequestTooLarge
from hearth.lab.export import records_csv
from hearth.lab.imports import parse_result_file
from hearth.lab.schemas import RunCreate, RunPublic, RunResults
from hearth.lab.service import Runs

router = APIRouter(prefix="/api/lab", tags=["lab"])
MAX_IMPORT_BYTES = 50 * 1024 * 1024


def _runs(request: Request) -> Runs:
    return request.app.state.lab


RunsDep = Annotated[Runs, Depends(_runs)]


@router.get("/runs")
async def list_runs(runs: RunsDep, caller: CallerDep) -> list[RunPublic]:
    """Runs, newest first, with each stage's summary (an invalid stage says why, and its
    numbers are not a result)."""
    return await runs.list()


@router.post("/runs", status_code=status.HTTP_202_ACCEPTED)
async def create_run(
    body: RunCreate, request: Request, runs: RunsDep, admin: AdminDep
) -> RunPublic:
    """Queue a benchmark; a worker runs it (`hearth worker`, or the one inside `hearth up`)."""
    run = await runs.create(
        body.spec, name=body.name, created_by=admin.user_id, deployment_id=body.deployment_id
    )
    await request.app.state.jobs.enqueue_bench(run.id)
    return run


@router.get("/runs/{run_id}")
async def get_run(
    run_id: uuid.UUID, request: Request, runs: RunsDep, caller: CallerDep
) -> RunResults:
    """A run, its stages, and what they cost per token on the catalog's hardware."""
    return await runs.results(run_id, request.app.state.catalog)


@router.post("/runs/{run_id}/resume", status_code=status.HTTP_202_ACCEPTED)
async def resume_run(
    run_id: uuid.UUID, request: Request, runs: RunsDep, admin: AdminDep
) -> RunPublic:
    """Queue a stopped or failed run again; it goes on from its last checkpoint."""
    run = await runs.get(run_id)
    if run.status == "finished" or run.source != "hearth":
        raise InvalidRequest(f"run {run_id} is {run.status} ({run.source}): nothing to resume")
    await request.app.state.jobs.enqueue_bench(run.id)
    return run


@router.get("/runs/{run_id}/requests")
async def export_requests(
    run_id: uuid.UUID,
    runs: RunsDep,
    caller: CallerDep,
    format: Annotated[str, Query(pattern="^(csv|json)$")] = "csv",
) -> Response:
    """Every request of the run (times in seconds from its stage segment's start)."""
    await runs.get(run_id)  # 404 first
    records = await runs.records(run_id)
    if format == "json":
        rows = [{"stage": s, **r.__dict__} for s, r in records]
        return Response(orjson.dumps(rows), media_type="application/json")
    headers = {"content-disposition": f'attachment; filename="run-{run_id}.csv"'}
    return Response(records_csv(records), media_type="text/csv", headers=headers)


@router.delete("/runs/{run_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_run(run_id: uuid.UUID, runs: RunsDep, admin: AdminDep) -> Response:
    await runs.delete(run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/import", status_code=status.HTTP_201_CREATED)
async def import_results(
    file: UploadFile, runs: RunsDep, admin: AdminDep, name: str | None = None
) -> list[RunPublic]:
    """A `vllm bench serve --save-result` or GuideLLM JSON file, as finished runs."""
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise RequestTooLarge(f"a result file may have {MAX_IMPORT_BYTES} bytes at most")
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # `vllm bench serve --burstiness inf` writes Infinity, which Python's json reads
        # (and so does `hearth bench import`) but orjson refuses.
        try:
            parsed = json.loads(data)
        except ValueError:
            raise InvalidRequest(f"not JSON: {exc}", param="file") from exc
    label = name or (file.filename or "imported").rsplit(".", 1)[0]
    return [
        await runs.save_imported(run, created_by=admin.user_id)
        for run in parse_result_file(parsed, label)
    ]


@router.get("/compare")
async def compare_runs(
    request: Request,
    runs: RunsDep,
    caller: CallerDep,
    ids: Annotated[list[uuid.UUID], Query(min_length=1, max_length=20)],
) -> list[RunResults]:
    """Several runs side by side, each with its costs."""
    return [await runs.results(run_id, request.app.state.catalog) for run_id in ids]
