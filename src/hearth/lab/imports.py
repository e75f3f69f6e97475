"""Other tools' result files, read into the lab's shapes so that old results join the same
tables: `vllm bench serve --save-result` (one stage per file) and GuideLLM's benchmarks JSON
(one stage per benchmark). vLLM's client records no planned send times; GuideLLM's records
its targeted start for constant and Poisson benchmarks (its dispatch delay and latency from
the schedule are imported), but not the lab's records, so no imported stage is self-checked
and its other latencies count from the actual send; each imported stage says so.

Numbers are mapped by definition, not by name: GuideLLM's ITL ((last token - first token) /
(output tokens - 1)) is the lab's TPOT; its TPOT counts the first token in and has no
equivalent here (docs: src/hearth/lab/metrics.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hearth.errors import InvalidRequest
from hearth.lab.metrics import Distribution, Summary
from hearth.lab.profiles import Stage

NOT_CHECKED = (
    "imported from {tool}: its client kept no planned send times, so this stage is not "
    "self-checked and its latencies count from the actual send"
)
PLANNED_NOT_CHECKED = (
    "imported from {tool}: its own dispatch delay and latency from its schedule are shown, "
    "but this stage is not self-checked and its other latencies count from the actual send"
)
GUIDELLM_TPOT = (
    "GuideLLM's ITL, each request's (last token - first token) / (output tokens - 1) "
    "weighted by its tokens, is this TPOT; its own TPOT counts the first token in and is not "
    "imported; it keeps no gaps between chunks, so there is no ITL"
)
# GuideLLM strategy → the lab's stage kind (a trace replay's schedule is not in the file).
_GUIDELLM_KINDS = {
    "synchronous": "synchronous",
    "concurrent": "concurrency",
    "throughput": "throughput",
    "constant": "constant",
    "poisson": "poisson",
}


@dataclass
class ImportedRun:
    source: str  # vllm | guidellm
    name: str
    model: str
    target: str
    spec: dict[str, Any]  # what the file says of its settings, as it says it
    stages: list[tuple[Stage, Summary]]


def parse_result_file(data: Any, name: str) -> list[ImportedRun]:
    """The runs in a result file, whichever tool wrote it; a 400 naming what is missing."""
    if isinstance(data, dict) and "benchmarks" in data:
        return [_guidellm(data, name)]
    if isinstance(data, dict) and "request_throughput" in data and "completed" in data:
        return [_vllm(data, name)]
    raise InvalidRequest(
        "not a result file the lab knows: expected `vllm bench serve --save-result` JSON "
        "(with request_throughput and completed) or GuideLLM's (with benchmarks)",
        param="file",
    )


def _ms(data: dict[str, Any], metric: str, count: int) -> Distribution:
    """vLLM's mean/median/pNN fields of one metric, in ms, as a distribution in seconds."""
    percentiles = {}
    for key, value in data.items():
        if (
            key.endswith(f"_{metric}_ms")
            and key.startswith("p")
            and key[1:].split("_")[0].replace(".", "").isdigit()
        ):
            percentiles[key.split("_")[0]] = [float(value) / 1000]
    if (median := data.get(f"median_{metric}_ms")) is not None:
        percentiles.setdefault("p50", [float(median) / 1000])
    mean = data.get(f"mean_{metric}_ms")
    return Distribution(
        count=count, mean=None if mean is None else float(mean) / 1000, percentiles=percentiles
    )


def _number(data: dict[str, Any], key: str, default: float = 0.0) -> float:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float):
        raise InvalidRequest(f"{key} is {value!r}, not a number", param="file")
    return float(value)


def _vllm(data: dict[str, Any], name: str) -> ImportedRun:
    completed = int(_number(data, "completed"))
    prompts = int(_number(data, "num_prompts", completed))
    rate = data.get("request_rate")
    concurrency = data.get("max_concurrency")
    if isinstance(rate, int | float) and rate != float("inf") and rate > 0:
        burst = float(data.get("burstiness") or 1.0)
        if burst == float("inf"):  # `--burstiness inf`: every gap is 1 / rate
            stage = Stage(kind="constant", rate=float(rate), requests=max(prompts, 1))
        else:
            kind = "poisson" if burst == 1.0 else "gamma"
            stage = Stage(kind=kind, rate=float(rate), burstiness=burst, requests=max(prompts, 1))
    elif isinstance(concurrency, int) and concurrency > 0:
        stage = Stage(kind="concurrency", concurrency=concurrency, requests=max(prompts, 1))
    else:
        stage = Stage(kind="throughput", requests=max(prompts, 1))
    failed = max(prompts - completed, 0)
    summary = Summary(
        requests=prompts,
        counted=prompts,
        succeeded=completed,
        failed=failed,
        duration=_number(data, "duration"),
        requested_rate=stage.rate,
        request_throughput=_number(data, "request_throughput"),
        output_throughput=_number(data, "output_throughput"),
        goodput=data.get("request_goodput"),
        ttft=_ms(data, "ttft", completed),
        ttft_planned=Distribution(count=0),
        tpot=_ms(data, "tpot", completed),
        itl=_ms(data, "itl", 0),
        e2e=_ms(data, "e2el", completed),
        e2e_planned=Distribution(count=0),
        dispatch_delay=Distribution(count=0),
        output_tokens=int(_number(data, "total_output_tokens")),
        token_source=f"vllm bench serve (tokenizer {data.get('tokenizer_id') or 'unknown'})",
        flags=[NOT_CHECKED.format(tool="vllm bench serve")],
    )
    return ImportedRun(
        source="vllm",
        name=name,
        model=str(data.get("model_id") or "unknown"),
        target=str(data.get("backend") or "vllm"),
        # Infinity as vLLM writes it ("inf"): PostgreSQL's JSON has no such number.
        spec={
            k: "inf" if isinstance(v, float) and math.isinf(v) else v
            for k, v in data.items()
            if not isinstance(v, list | dict) and not (isinstance(v, float) and math.isnan(v))
        },
        stages=[(stage, summary)],
    )


def _guidellm(data: dict[str, Any], name: str) -> ImportedRun:
    """GuideLLM's benchmarks JSON (`--output kind=json`, 0.8): one stage per benchmark."""
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, list) or not benchmarks:
        raise InvalidRequest("GuideLLM file: benchmarks is not a list of benchmarks", param="file")
    stages = [_guidellm_stage(b, f"benchmarks[{i}]") for i, b in enumerate(benchmarks)]
    first = benchmarks[0]["config"]
    backend = first.get("backend") if isinstance(first.get("backend"), dict) else {}
    spec_of = (data.get("config") or {}).get("spec") or {}
    version = (data.get("metadata") or {}).get("guidellm_version")
    return ImportedRun(
        source="guidellm",
        name=name,
        model=str(backend.get("model") or "unknown"),
        target=str(backend.get("target") or "guidellm"),
        spec={
            "guidellm_version": version,
            "backend": {k: v for k, v in backend.items() if k != "api_key"},
            "profile": first.get("profile") or spec_of.get("profile"),
            "data": spec_of.get("data"),
            "constraints": spec_of.get("constraints"),
        },
        stages=stages,
    )


def _at(data: Any, where: str, *path: str) -> Any:
    """`data[path[0]][path[1]]...`, or a 400 naming the first key that is missing."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            raise InvalidRequest(f"GuideLLM file: {where} has no {key}", param="file")
        data, where = data[key], f"{where}.{key}"
    return data


def _guidellm_stage(bench: Any, where: str) -> tuple[Stage, Summary]:
    strategy = _at(bench, where, "config", "strategy")
    kind = _at(strategy, f"{where}.config.strategy", "type_")
    if kind not in _GUIDELLM_KINDS:
        raise InvalidRequest(
            f"GuideLLM file: {where} is a {kind!r} benchmark, which the lab cannot import "
            f"(it knows {', '.join(_GUIDELLM_KINDS)})",
            param="file",
        )
    metrics = _at(bench, where, "metrics")
    m = f"{where}.metrics"
    totals = _at(metrics, m, "request_totals")
    ok, errored, incomplete = (
        int(_number(totals, key)) for key in ("successful", "errored", "incomplete")
    )
    counted = ok + errored + incomplete
    made = ((bench.get("scheduler_metrics") or {}).get("requests_made") or {}).get("total")
    requests = int(made) if isinstance(made, int) and made >= counted else counted
    rate = strategy.get("rate") if kind in {"constant", "poisson"} else None
    stage = Stage(
        kind=_GUIDELLM_KINDS[kind],  # type: ignore[arg-type]
        requests=max(requests, 1),
        rate=None if rate is None else float(rate),
        concurrency=int(strategy["streams"]) if kind == "concurrent" else None,
    )

    def dist(key: str, scale: float, status: str = "successful") -> Distribution:
        found = metrics.get(key)
        if found is None:  # GuideLLM leaves schedule metrics out where there is no schedule
            return Distribution(count=0)
        return _guidellm_distribution(_at(found, f"{m}.{key}", status), scale)

    dispatch = dist("request_dispatch_delay", 1.0, "total")
    tokens = _at(metrics, m, "output_token_count", "successful")
    goodput = metrics.get("request_goodput")
    errors: dict[str, int] = {}
    for request in ((bench.get("requests") or {}).get("errored")) or []:
        message = str((request.get("info") or {}).get("error") or "error")[:300]
        errors[message] = errors.get(message, 0) + 1
    if incomplete:
        errors["incomplete: still running when the benchmark ended"] = incomplete
    tool = "GuideLLM"
    flags = [(PLANNED_NOT_CHECKED if dispatch.count else NOT_CHECKED).format(tool=tool)]
    flags.append(GUIDELLM_TPOT)
    flags += [
        f"GuideLLM warned: {w['message']}"
        for w in bench.get("warnings") or []
        if isinstance(w, dict) and w.get("message")
    ]
    summary = Summary(
        requests=requests,
        counted=counted,
        succeeded=ok,
        failed=errored + incomplete,
        errors=errors,
        duration=_number(bench, "duration"),
        requested_rate=stage.rate,
        request_throughput=_mean(_at(metrics, m, "requests_per_second", "successful")),
        output_throughput=_mean(_at(metrics, m, "output_tokens_per_second", "successful")),
        goodput=None if goodput is None else _mean(goodput.get("successful") or {}),
        slo_attainment=metrics.get("slo_attainment"),
        ttft=dist("time_to_first_token_ms", 0.001),
        ttft_planned=Distribution(count=0),
        tpot=dist("inter_token_latency_ms", 0.001),
        itl=Distribution(count=0),
        e2e=dist("request_latency", 1.0),
        e2e_planned=dist("request_scheduled_latency", 1.0),
        dispatch_delay=dispatch,
        output_tokens=int(_number(tokens, "total_sum")),
        token_source="GuideLLM (the server's usage, else its tokenizer)",
        flags=flags,
    )
    return stage, summary


def _mean(summary: dict[str, Any]) -> float:
    return _number(summary, "mean")


def _guidellm_distribution(summary: Any, scale: float) -> Distribution:
    """One of GuideLLM's distribution summaries (count, mean, percentiles p50…p999), scaled
    to seconds; the lab's percentiles only, each as [value] (GuideLLM's own intervals come
    from another method and are missing where it had too few values)."""
    if not isinstance(summary, dict):
        raise InvalidRequest("GuideLLM file: a distribution is not an object", param="file")
    count = int(_number(summary, "count"))
    if count == 0:
        return Distribution(count=0)
    percentiles = summary.get("percentiles") or {}
    return Distribution(
        count=count,
        mean=_number(summary, "mean") * scale,
        percentiles={
            p: [float(percentiles[p]) * scale]
            for p in ("p50", "p90", "p95", "p99")
            if isinstance(percentiles.get(p), int | float)
        },
    )
