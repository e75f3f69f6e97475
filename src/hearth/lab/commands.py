"""What `hearth bench ...` does: run (or resume) a benchmark into the database with a progress
bar, and read, export and import runs. A SIGTERM (a spot node's notice) or Ctrl-C stops a run
at a checkpoint; the same command with `--resume RUN` goes on from there."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from hearth.config import Settings
from hearth.errors import DependencyUnavailable, InvalidRequest
from hearth.lab.datasets import load_tokenizer
from hearth.lab.export import records_csv
from hearth.lab.imports import parse_result_file
from hearth.lab.metrics import Summary
from hearth.lab.runner import Runner, RunSpec
from hearth.lab.service import Runs
from hearth.server import open_database

STOPPED = 75  # EX_TEMPFAIL: the run stopped at a checkpoint and wants to be resumed


def local_tokenizer(settings: Settings, model: str) -> str | None:
    """The GGUF file of a model this configuration serves with llama.cpp: its tokenizer."""
    from hearth.engines.llamacpp import expand_models

    for engine in settings.engines:
        if getattr(engine, "kind", None) != "llamacpp":
            continue
        for config in expand_models(engine.models):  # type: ignore[attr-defined]
            if config.name == model and config.path is not None:
                return str(config.path)
    return None


async def run_benchmark(
    settings: Settings,
    *,
    spec: RunSpec | None,
    name: str,
    resume: uuid.UUID | None,
    run_id: uuid.UUID | None = None,
    created_by: str,
    grace: float,
    stopped_exit: int,
    out: Path | None,
) -> int:
    """Create (or resume) a run and drive it; the exit code: 0 finished, `stopped_exit`
    stopped at a checkpoint (a signal, or the database or network failing), 1 failed.
    With `run_id`, the run is created under that id the first time and resumed after (a
    Kubernetes Job's next pod runs the same command)."""
    async with AsyncExitStack() as stack:
        runs = Runs(await open_database(settings, stack))
        run_id = resume or run_id or uuid.uuid4()
        # One process at a time drives a run: the pod a chart upgrade starts waits here
        # until the one it replaces has stopped at its checkpoint.
        await stack.enter_async_context(runs.exclusive(run_id, waiting=_say_waiting))
        if resume is None:
            assert spec is not None
            existing = await runs.find(run_id) if run_id is not None else None
            if existing is not None and existing.status == "finished":
                click.echo(f"run {run_id} is finished", err=True)
                return 0
            if existing is None:
                run_id = (
                    await runs.create(spec, name=name, created_by=created_by, run_id=run_id)
                ).id
        assert run_id is not None
        spec = await runs.begin(run_id)
        click.echo(f"run {run_id}", err=True)
        key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        if spec.api_key_env and not key:
            await runs.end(run_id, "failed", f"${spec.api_key_env} is not set")
            raise InvalidRequest(f"${spec.api_key_env} is not set", param="api_key_env")
        tokenizer = load_tokenizer(spec.tokenizer)
        with _bar() as progress:
            runner = Runner(
                spec, runs.store(run_id), tokenizer, api_key=key, progress=progress, grace=grace
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, runner.stop)
            try:
                outcome = await runner.run()
            except (OSError, SQLAlchemyError, DependencyUnavailable) as exc:
                # The database or the network, not the run: what completed is saved, and the
                # same command goes on (a Job retries exit 75, it fails on 1).
                with contextlib.suppress(Exception):
                    await runs.end(run_id, "interrupted", f"{type(exc).__name__}: {exc}"[:500])
                click.echo(
                    f"stopped: {exc}; the same command goes on from the checkpoint", err=True
                )
                return stopped_exit
            except Exception as exc:
                await runs.end(run_id, "failed", f"{type(exc).__name__}: {exc}"[:500])
                raise
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        if outcome.failure is not None:
            await runs.end(run_id, "failed", outcome.failure)
            raise InvalidRequest(f"run {run_id} failed: {outcome.failure}")
        if not outcome.finished:
            await runs.end(run_id, "interrupted")
            click.echo(
                f"stopped at a checkpoint; go on with: hearth bench run --resume {run_id}",
                err=True,
            )
            return stopped_exit
        await runs.end(run_id, "finished")
        for stage, summary in outcome.summaries:
            click.echo(_line(stage.label(), summary))
        if out is not None:
            run = await runs.get(run_id)
            await asyncio.to_thread(out.write_text, run.model_dump_json(indent=2))
        return 0


def _say_waiting() -> None:
    click.echo("another process is running this run; waiting for it to stop", err=True)


def _line(label: str, s: Summary) -> str:
    def p(d: Any, key: str = "p50") -> str:
        value = d.percentiles.get(key)
        return f"{value[0] * 1000:.0f}" if value else "-"

    verdict = "" if s.valid else "  INVALID: " + "; ".join(s.invalid_because)
    flags = "".join(f"\n    note: {f}" for f in s.flags)
    return (
        f"{label:28} {s.succeeded}/{s.counted} ok  {s.request_throughput:7.2f} req/s  "
        f"{s.output_throughput:8.1f} tok/s  TTFT p50 {p(s.ttft)} p99 {p(s.ttft, 'p99')} ms  "
        f"TPOT p50 {p(s.tpot)} ms  e2e(planned) p99 {p(s.e2e_planned, 'p99')} ms{verdict}{flags}"
    )


@contextlib.contextmanager
def _bar() -> Iterator[Any]:
    """A progress line per stage on a terminal; nothing otherwise (logs stay clean)."""
    if not sys.stderr.isatty():
        yield None
        return
    last: dict[str, Any] = {}

    def show(index: int, label: str, done: int, total: int) -> None:
        if last.get("key") == (index, done * 40 // total) and done != total:
            return
        last["key"] = (index, done * 40 // total)
        filled = done * 40 // total
        sys.stderr.write(f"\rstage {index + 1} {label[:24]:24} [{'#' * filled:40}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    yield show


async def list_runs(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        runs = await Runs(await open_database(settings, stack)).list(limit=1000)
    for run in runs:
        valid = sum(1 for s in run.stages if s.valid)
        click.echo(
            f"{run.id}  {run.status:11}  {run.source:8}  {len(run.stages)} stages "
            f"({valid} valid)  {run.model}  {run.name}"
        )
    if not runs:
        click.echo("no benchmark runs")


async def show_run(settings: Settings, run_id: uuid.UUID, fmt: str) -> None:
    """A run as JSON (with its summaries), or its requests as CSV."""
    async with AsyncExitStack() as stack:
        runs = Runs(await open_database(settings, stack))
        run = await runs.get(run_id)
        if fmt == "json":
            click.echo(run.model_dump_json(indent=2))
            return
        if fmt == "text":
            click.echo(f"{run.name} ({run.status}, {run.source}) {run.model} at {run.target}")
            for stage in run.stages:
                if stage.summary is not None:
                    click.echo(_line(stage.label, Summary.model_validate(stage.summary)))
                else:
                    click.echo(f"{stage.label:28} not finished ({stage.recorded or 0} recorded)")
            return
        click.echo(records_csv(await runs.records(run_id)), nl=False)


async def import_runs(settings: Settings, path: Path, name: str | None, created_by: str) -> None:
    """A `vllm bench serve` or GuideLLM result file into the same tables."""
    try:
        data = json.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"{path}: {exc}") from exc
    imported = parse_result_file(data, name or path.stem)
    async with AsyncExitStack() as stack:
        runs = Runs(await open_database(settings, stack))
        for item in imported:
            run = await runs.save_imported(item, created_by=created_by)
            click.echo(f"imported {run.id} ({item.source}, {len(item.stages)} stages) {run.name}")
