"""`hearth bench ...`: the lab's load generator and its stored runs, from the command line."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from hearth.lab.profiles import replay_stage

STAGE_HELP = (
    "A stage, repeatable, in order: synchronous | throughput | concurrency:N | constant:RATE | "
    "poisson:RATE | gamma:RATE:BURSTINESS | replay:FILE (a JSON list of send times in "
    "seconds, or of {timestamp, input_tokens, output_tokens}). Or one sweep:N "
    "(synchronous, throughput, then N rates between)."
)


def _stage(text: str, requests: int) -> dict[str, Any]:
    kind, _, rest = text.partition(":")
    args = rest.split(":") if rest else []
    try:
        if kind in {"synchronous", "throughput"} and not args:
            return {"kind": kind, "requests": requests}
        if kind == "concurrency" and len(args) == 1:
            return {"kind": kind, "concurrency": int(args[0]), "requests": requests}
        if kind in {"constant", "poisson"} and len(args) == 1:
            return {"kind": kind, "rate": float(args[0]), "requests": requests}
        if kind == "gamma" and len(args) == 2:
            return {
                "kind": kind,
                "rate": float(args[0]),
                "burstiness": float(args[1]),
                "requests": requests,
            }
        if kind == "replay" and len(args) == 1:
            trace = json.loads(Path(args[0]).read_text(encoding="utf-8"))
            if not isinstance(trace, list):
                raise ValueError("a trace is a JSON list")
            return replay_stage(trace).model_dump(exclude_none=True)
    except (ValueError, OSError) as exc:
        raise click.BadParameter(f"{text}: {exc}", param_hint="--stage") from exc
    raise click.BadParameter(f"{text}: not a stage ({STAGE_HELP})", param_hint="--stage")


def _lengths(text: str, what: str) -> dict[str, Any]:
    """MEAN or MEAN:STDEV or MEAN:STDEV:MIN:MAX tokens."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError as exc:
        raise click.BadParameter(f"{text}: MEAN[:STDEV[:MIN:MAX]]", param_hint=what) from exc
    if len(parts) not in (1, 2, 4):
        raise click.BadParameter(f"{text}: MEAN[:STDEV[:MIN:MAX]]", param_hint=what)
    out: dict[str, Any] = {"mean": int(parts[0])}
    if len(parts) >= 2:
        out["stdev"] = parts[1]
    if len(parts) == 4:
        out["min"], out["max"] = int(parts[2]), int(parts[3])
    return out


@click.group()
def bench() -> None:
    """The model lab: benchmark any OpenAI-compatible endpoint; stored runs."""


@bench.command("run")
@click.option("--url", default=None, help="Base URL (…/v1) [default: this Hearth's gateway].")
@click.option("--model", default=None, help="The model to ask [default: the default chat model].")
@click.option(
    "--api", type=click.Choice(["chat", "completions"]), default="chat", show_default=True
)
@click.option("--key-env", default=None, help="Environment variable holding the API key.")
@click.option("--stage", "stages", multiple=True, help=STAGE_HELP)
@click.option("--requests", type=int, default=100, show_default=True, help="Requests per stage.")
@click.option("--input-tokens", default="128", show_default=True, help="MEAN[:STDEV[:MIN:MAX]].")
@click.option("--output-tokens", default="64", show_default=True, help="MEAN[:STDEV[:MIN:MAX]].")
@click.option(
    "--prefix-tokens", type=int, default=0, show_default=True, help="A prefix all prompts share."
)
@click.option(
    "--sharegpt",
    type=click.Path(dir_okay=False, exists=True),
    help="Prompts from a ShareGPT JSON file.",
)
@click.option(
    "--tokenizer",
    default=None,
    help="A .gguf or tokenizer.json [default: the model's own GGUF if served here].",
)
@click.option(
    "--warmup", type=float, default=0.1, show_default=True, help="Share not counted at the start."
)
@click.option(
    "--cooldown", type=float, default=0.1, show_default=True, help="Share not counted at the end."
)
@click.option("--slo-ttft", type=float, help="SLO: seconds to the first token.")
@click.option("--slo-tpot", type=float, help="SLO: seconds per output token.")
@click.option("--max-concurrency", type=int, help="Open loop: most requests in flight.")
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option(
    "--extra-body", default=None, help="JSON merged into every request (an engine's own options)."
)
@click.option(
    "--timeout", type=float, default=600.0, show_default=True, help="Seconds per request."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", default=None, help="The run's name.")
@click.option("--resume", type=click.UUID, default=None, help="Go on with a stopped run instead.")
@click.option(
    "--run-id",
    type=click.UUID,
    default=None,
    help="Create the run with this id, or go on with it if it exists (a Job's retries).",
)
@click.option(
    "--grace",
    type=float,
    default=30.0,
    show_default=True,
    help="On a stop: seconds in-flight requests get.",
)
@click.option(
    "--stopped-exit-code",
    type=int,
    default=0,
    show_default=True,
    help="Exit code of a run stopped at a checkpoint (a Kubernetes Job sets 75: retry).",
)
@click.option(
    "--json", "out", type=click.Path(dir_okay=False), help="Also write the run as JSON here."
)
def bench_run(**o: Any) -> None:
    """Run a benchmark into the database (or resume one); SIGTERM stops it at a checkpoint."""
    from hearth.cli import _quiet_settings, _run_command
    from hearth.config import DEFAULT_CHAT_MODEL
    from hearth.lab.commands import local_tokenizer, run_benchmark
    from hearth.lab.runner import RunSpec

    settings = _quiet_settings()
    spec = None
    if o["resume"] is not None and o["run_id"] is not None:
        raise click.UsageError("--resume RUN or --run-id RUN, not both")
    if o["resume"] is None:
        model = o["model"] or DEFAULT_CHAT_MODEL
        url = o["url"] or f"http://{settings.host}:{settings.port}/v1"
        sweep = [s for s in o["stages"] if s.startswith("sweep:")]
        if sweep and len(o["stages"]) > 1:
            raise click.BadParameter("a sweep is the whole profile", param_hint="--stage")
        profile: dict[str, Any] = {"requests_per_stage": o["requests"]}
        if sweep:
            profile["sweep"] = int(sweep[0].split(":", 1)[1])
        else:
            profile["stages"] = [_stage(s, o["requests"]) for s in o["stages"] or ["synchronous"]]
        slo = {k: v for k, v in (("ttft", o["slo_ttft"]), ("tpot", o["slo_tpot"])) if v is not None}
        fields: dict[str, Any] = {
            "base_url": url,
            "model": model,
            "api": o["api"],
            "api_key_env": o["key_env"],
            "extra_body": json.loads(o["extra_body"]) if o["extra_body"] else {},
            "temperature": o["temperature"],
            "timeout": o["timeout"],
            "profile": profile,
            "data": {
                "kind": "sharegpt" if o["sharegpt"] else "synthetic",
                "path": o["sharegpt"],
                "input": _lengths(o["input_tokens"], "--input-tokens"),
                "output": _lengths(o["output_tokens"], "--output-tokens"),
                "prefix_tokens": o["prefix_tokens"],
                "seed": o["seed"],
            },
            "options": {"warmup": o["warmup"], "cooldown": o["cooldown"], "slo": slo},
            "tokenizer": o["tokenizer"] or local_tokenizer(settings, model),
            "seed": o["seed"],
            "max_concurrency": o["max_concurrency"],
        }
        try:
            spec = RunSpec.model_validate(fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise click.UsageError(problems) from exc
    code = _run_command(
        run_benchmark(
            settings,
            spec=spec,
            name=o["name"] or f"{spec.model if spec else 'run'} benchmark",
            resume=o["resume"],
            run_id=o["run_id"],
            created_by="cli",
            grace=o["grace"],
            stopped_exit=o["stopped_exit_code"],
            out=Path(o["out"]) if o["out"] else None,
        )
    )
    sys.exit(code)


@bench.command("list")
def bench_list() -> None:
    """Stored runs, newest first."""
    from hearth.cli import _quiet_settings, _run_command
    from hearth.lab.commands import list_runs

    _run_command(list_runs(_quiet_settings()))


@bench.command("show")
@click.argument("run_id", type=click.UUID)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "csv"]),
    default="text",
    show_default=True,
    help="csv: every request of the run.",
)
def bench_show(run_id: uuid.UUID, fmt: str) -> None:
    """One run: its stages' numbers, the run as JSON, or its requests as CSV."""
    from hearth.cli import _quiet_settings, _run_command
    from hearth.lab.commands import show_run

    _run_command(show_run(_quiet_settings(), run_id, fmt))


@bench.command("import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@click.option("--name", default=None, help="The run's name [default: the file's].")
def bench_import(path: str, name: str | None) -> None:
    """A `vllm bench serve --save-result` or GuideLLM JSON file, as a stored run."""
    from hearth.cli import _quiet_settings, _run_command
    from hearth.lab.commands import import_runs

    _run_command(import_runs(_quiet_settings(), Path(path), name, "cli"))
