"""Other tools' result files, read into the lab's shapes so that old results join the same
tables: `vllm bench serve --save-result` (one stage per file) and GuideLLM's benchmarks JSON
(one stage per benchmark). Neither tool records planned send times, so their runs cannot be
self-checked and their latencies count from the actual send; each imported stage says so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hearth.errors import InvalidRequest
from hearth.lab.metrics import Distribution, Summary
from hearth.lab.profiles import Stage

NOT_CHECKED = (
    "imported from {tool}: its client kept no planned send times, so this stage is not "
    "self-checked and its latencies count from the actual send"
)


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
        spec={k: v for k, v in data.items() if not isinstance(v, list | dict)},
        stages=[(stage, summary)],
    )


def _guidellm(data: dict[str, Any], name: str) -> ImportedRun:
    raise InvalidRequest("GuideLLM files: not yet", param="file")
