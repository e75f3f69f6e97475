"""The lab's pages: benchmark runs for everyone signed in (a stage the self-check rejected
says why and shows no numbers), one run with its charts, runs compared; for admins, a form
to queue a run and one to import another tool's result file."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError

from hearth.chat.markdown import render_markdown
from hearth.errors import HearthError, InvalidRequest
from hearth.lab.imports import parse_result_file
from hearth.lab.runner import RunSpec
from hearth.lab.schemas import RunResults
from hearth.web._charts import line_chart
from hearth.web._render import checked_form, page, require_user

router = APIRouter(include_in_schema=False)
METRICS_DOC = Path(__file__).resolve().parents[1] / "lab" / "metrics.md"


@router.get("/lab", response_class=HTMLResponse)
async def lab_page(request: Request, done: str = "") -> Response:
    await require_user(request)
    runs = await request.app.state.lab.list()
    return page(request, "lab.html", {"runs": runs, "done": done})


@router.post("/lab", response_class=HTMLResponse)
async def lab_action(request: Request) -> Response:
    """`queue` a run from the form's fields, or `import` a result file (admins)."""
    user = await require_user(request, admin=True)
    form = await checked_form(request)
    lab = request.app.state.lab
    try:
        if form.get("action") == "queue":
            spec = _spec(form)
            run = await lab.create(
                spec, name=form.get("name") or f"{spec.model} benchmark", created_by=user.user_id
            )
            await request.app.state.jobs.enqueue_bench(run.id)
            return RedirectResponse(f"/lab/runs/{run.id}", status_code=303)
        if form.get("action") == "import":
            upload = (await request.form()).get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidRequest("choose a result file to import")
            data = await upload.read(50 * 1024 * 1024 + 1)
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise InvalidRequest(f"not JSON: {exc}") from exc
            name = (upload.filename or "imported").rsplit(".", 1)[0]
            for item in parse_result_file(parsed, name):
                await lab.save_imported(item, created_by=user.user_id)
            return RedirectResponse("/lab?done=imported", status_code=303)
    except (HearthError, ValidationError) as exc:
        message = exc.message if isinstance(exc, HearthError) else _problems(exc)
        runs = await lab.list()
        return page(request, "lab.html", {"runs": runs, "error": message}, status_code=400)
    raise InvalidRequest(f"unknown action {form.get('action')!r}")


def _spec(form: dict[str, str]) -> RunSpec:
    requests = int(form.get("requests") or 50)
    kind = form.get("kind") or "synchronous"
    stage: dict[str, Any] = {"kind": kind, "requests": requests}
    if kind in {"constant", "poisson"}:
        stage["rate"] = float(form.get("rate") or 1)
    if kind == "concurrency":
        stage["concurrency"] = int(form.get("concurrency") or 1)
    profile: dict[str, Any] = (
        {"sweep": int(form.get("sweep") or 3), "requests_per_stage": requests}
        if kind == "sweep"
        else {"stages": [stage]}
    )
    return RunSpec.model_validate(
        {
            "base_url": form.get("base_url", ""),
            "model": form.get("model", ""),
            "api_key_env": form.get("api_key_env") or None,
            "profile": profile,
            "data": {
                "input": {"mean": int(form.get("input_tokens") or 128)},
                "output": {"mean": int(form.get("output_tokens") or 64)},
            },
        }
    )


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


@router.get("/lab/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: uuid.UUID) -> Response:
    await require_user(request)
    state = request.app.state
    result = await state.lab.results(run_id, state.catalog)
    cdf = await state.lab.ttft_cdf(run_id)
    labels = {s.index: s.label for s in result.stages}
    charts = _curves([result]) | {
        "ttft_cdf": line_chart(
            [(labels.get(i, str(i)), points) for i, points in sorted(cdf.items())],
            title="TTFT distribution per stage",
            x_label="time to first token (ms)",
            y_label="share of requests",
        )
    }
    recorded = {s.index: s.recorded for s in result.run.stages if s.recorded is not None}
    context = {"results": [result], "charts": charts, "progress": recorded}
    return page(request, "lab_run.html", context)


@router.post("/lab/runs/{run_id}", response_class=HTMLResponse)
async def run_action(request: Request, run_id: uuid.UUID) -> Response:
    """`resume`: queue a stopped or failed run again, from its checkpoint (admins)."""
    await require_user(request, admin=True)
    form = await checked_form(request)
    if form.get("action") != "resume":
        raise InvalidRequest(f"unknown action {form.get('action')!r}")
    run = await request.app.state.lab.get(run_id)
    if run.status not in ("interrupted", "failed") or run.source != "hearth":
        raise InvalidRequest(f"this run is {run.status}: nothing to resume")
    await request.app.state.jobs.enqueue_bench(run_id)
    return RedirectResponse(f"/lab/runs/{run_id}", status_code=303)


@router.get("/lab/metrics", response_class=HTMLResponse)
async def metrics_page(request: Request) -> Response:
    """How every number of the lab is defined (src/hearth/lab/metrics.md)."""
    await require_user(request)
    text = METRICS_DOC.read_text(encoding="utf-8")
    return page(request, "lab_metrics.html", {"body": Markup(render_markdown(text))})


@router.get("/lab/compare", response_class=HTMLResponse)
async def compare_page(
    request: Request, ids: Annotated[list[uuid.UUID], Query(max_length=20)]
) -> Response:
    await require_user(request)
    state = request.app.state
    results = [await state.lab.results(i, state.catalog) for i in ids]
    context = {"results": results, "charts": _curves(results), "progress": {}}
    return page(request, "lab_run.html", context)


def _curves(results: list[RunResults]) -> dict[str, Any]:
    """Per run, a line through its valid stages: latency against throughput, goodput
    against the rate achieved. Invalid stages are not results: left out."""

    def points(run: RunResults, x_key: str, y: Any) -> tuple[str, list[tuple[float, float]]]:
        out = []
        for stage in run.stages:
            s = stage.summary
            if stage.valid and s and (value := y(s)) is not None and s.get(x_key) is not None:
                out.append((float(s[x_key]), value))
        return run.run.name, out

    def pct(metric: str, p: str, scale: float = 1000) -> Any:
        def get(s: dict[str, Any]) -> float | None:
            value = (s.get(metric) or {}).get("percentiles", {}).get(p)
            return value[0] * scale if value else None

        return get

    return {
        "ttft": line_chart(
            [points(r, "output_throughput", pct("ttft", "p95")) for r in results],
            title="TTFT p95 against output throughput",
            x_label="output tokens/s",
            y_label="TTFT p95 (ms)",
        ),
        "tpot": line_chart(
            [points(r, "output_throughput", pct("tpot", "p50")) for r in results],
            title="TPOT p50 against output throughput",
            x_label="output tokens/s",
            y_label="TPOT p50 (ms)",
        ),
        "goodput": line_chart(
            [points(r, "achieved_rate", lambda s: s.get("goodput")) for r in results],
            title="Goodput against the rate sent",
            x_label="requests/s sent",
            y_label="goodput (requests/s meeting the SLO)",
        ),
    }
