"""Other tools' result files read into the lab's shapes: real outputs of GuideLLM 0.8.1 (a
sweep: synchronous, throughput and one constant rate, its per-request lists cut to two and
its word and character counts to null, which its own schema allows) and of `vllm bench serve
--save-result` (vLLM 0.33.0, Poisson at 10/s), both against bench/_lab_upstream.py's
`timed-50-10` model. The expected numbers are read from the files themselves."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from hearth.errors import InvalidRequest
from hearth.lab.imports import (
    GUIDELLM_TPOT,
    NOT_CHECKED,
    PLANNED_NOT_CHECKED,
    parse_result_file,
)

DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def test_a_guidellm_sweep_is_one_stage_per_benchmark() -> None:
    [run] = parse_result_file(load("guidellm_0.8.1.json"), "sweep")
    assert (run.source, run.name, run.model) == ("guidellm", "sweep", "timed-50-10")
    assert run.target == "http://127.0.0.1:9311"
    assert run.spec["guidellm_version"] == "0.8.1" and run.spec["profile"]["kind"] == "sweep"
    assert "api_key" not in run.spec["backend"]
    labels = [stage.label() for stage, _ in run.stages]
    assert labels == ["synchronous", "throughput", "constant 43.6643/s"]

    stage, s = run.stages[0]
    assert stage.requests == 12
    assert (s.requests, s.counted, s.succeeded, s.failed) == (12, 12, 12, 0)
    assert s.duration == pytest.approx(2.960114002227783)
    assert s.request_throughput == pytest.approx(4.053897921150603)
    assert s.output_throughput == pytest.approx(81.07795842301203)
    assert s.output_tokens == 240
    # Milliseconds in the file, seconds here; one value per percentile: no interval known.
    assert s.ttft.count == 12 and s.ttft.mean == pytest.approx(0.05578758319218953)
    assert s.ttft.percentiles["p50"] == [pytest.approx(0.05151772499084473)]
    assert s.ttft.percentiles["p99"] == [pytest.approx(0.10010099411010742)]
    assert set(s.ttft.percentiles) == {"p50", "p90", "p95", "p99"}
    # GuideLLM's ITL is the lab's TPOT (first token out); request_latency is in seconds.
    assert s.tpot.percentiles["p50"] == [pytest.approx(0.009989964334588302)]
    assert s.tpot.mean == pytest.approx(0.009806910104918897)
    assert s.itl.count == 0 and s.ttft_planned.count == 0
    assert s.e2e.percentiles["p50"] == [pytest.approx(0.24170613288879395)]
    # Closed loop: GuideLLM has no schedule to be late against.
    assert s.dispatch_delay.count == 0 and s.e2e_planned.count == 0
    assert s.flags[:2] == [NOT_CHECKED.format(tool="GuideLLM"), GUIDELLM_TPOT]
    assert "GuideLLM warned: mean generation delay was 2%" in s.flags[2]
    assert s.valid and s.requested_rate is None

    stage, s = run.stages[2]
    assert stage.kind == "constant" and stage.rate == pytest.approx(43.664286160444725)
    assert s.requested_rate == stage.rate and s.duration == pytest.approx(0.4917025566101074)
    assert s.dispatch_delay.count == 12
    assert s.dispatch_delay.mean == pytest.approx(0.0035413304964701333)
    assert s.dispatch_delay.percentiles["p99"] == [pytest.approx(0.004921436309814453)]
    assert s.e2e_planned.percentiles["p50"] == [pytest.approx(0.245866060256958)]
    assert s.flags[0] == PLANNED_NOT_CHECKED.format(tool="GuideLLM")


def test_guidellm_strategies_map_to_stage_kinds_and_failures_are_counted() -> None:
    data = load("guidellm_0.8.1.json")
    bench = data["benchmarks"][2]
    bench["config"]["strategy"] = {"type_": "concurrent", "streams": 4, "worker_count": 4}
    concurrent = copy.deepcopy(data)
    bench["config"]["strategy"] = {"type_": "poisson", "rate": 2.5}
    bench["metrics"]["request_totals"].update(errored=1, incomplete=2, total=15)
    bench["scheduler_metrics"]["requests_made"]["total"] = 16
    failed = copy.deepcopy(bench["requests"]["successful"][0])
    failed["info"].update(status="errored", error="HTTP 500: the engine fell over")
    bench["requests"]["errored"] = [failed]
    [run] = parse_result_file(concurrent, "c")
    assert run.stages[2][0].label() == "concurrency 4"
    [run] = parse_result_file(data, "p")
    stage, s = run.stages[2]
    assert stage.label() == "poisson 2.5/s" and stage.requests == 16
    assert (s.requests, s.counted, s.succeeded, s.failed) == (16, 15, 12, 3)
    assert s.errors == {
        "HTTP 500: the engine fell over": 1,
        "incomplete: still running when the benchmark ended": 2,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(benchmarks="none"), "benchmarks is not a list"),
        (lambda d: d.update(benchmarks=[]), "benchmarks is not a list"),
        (lambda d: d["benchmarks"][1].pop("metrics"), "benchmarks[1] has no metrics"),
        (
            lambda d: d["benchmarks"][0]["metrics"]["time_to_first_token_ms"].pop("successful"),
            "benchmarks[0].metrics.time_to_first_token_ms has no successful",
        ),
        (
            lambda d: d["benchmarks"][0]["config"].pop("strategy"),
            "benchmarks[0].config has no strategy",
        ),
        (
            lambda d: d["benchmarks"][0]["config"]["strategy"].update(type_="trace"),
            "benchmarks[0] is a 'trace' benchmark, which the lab cannot import",
        ),
        (
            lambda d: d["benchmarks"][0].update(duration="long"),
            "duration is 'long', not a number",
        ),
    ],
)
def test_a_file_that_is_not_what_it_claims_is_refused(change: Any, message: str) -> None:
    data = load("guidellm_0.8.1.json")
    change(data)
    with pytest.raises(InvalidRequest) as caught:
        parse_result_file(data, "bad")
    assert message in caught.value.message and caught.value.param == "file"


def test_a_file_of_no_known_tool_is_refused() -> None:
    for data in ({}, [], {"completed": 3}, "text"):
        with pytest.raises(InvalidRequest, match="not a result file the lab knows"):
            parse_result_file(data, "x")


def test_a_vllm_bench_serve_result_is_one_stage() -> None:
    [run] = parse_result_file(load("vllm_bench_serve.json"), "vllm")
    assert (run.source, run.model, run.target) == ("vllm", "timed-50-10", "openai-chat")
    assert run.spec["num_prompts"] == 20 and "latencies" not in run.spec
    [(stage, s)] = run.stages
    assert stage.label() == "poisson 10/s" and stage.requests == 20
    assert (s.requests, s.succeeded, s.failed) == (20, 20, 0)
    assert s.duration == pytest.approx(2.2425769920000675)
    assert s.request_throughput == pytest.approx(8.91831142089921)
    assert s.output_throughput == pytest.approx(178.36622841798422)
    assert s.output_tokens == 400
    assert s.ttft.mean == pytest.approx(0.05276795694999237)
    assert s.ttft.percentiles == {
        "p50": [pytest.approx(0.05194750449982166)],
        "p90": [pytest.approx(0.05590667189999294)],
        "p99": [pytest.approx(0.05759596883991435)],
    }
    assert s.tpot.mean == pytest.approx(0.0100235014184196)
    assert s.itl.percentiles["p99"] == [pytest.approx(0.014336593420166531)]
    assert s.e2e.percentiles["p50"] == [pytest.approx(0.24211558149954726)]
    assert s.dispatch_delay.count == 0 and s.flags == [NOT_CHECKED.format(tool="vllm bench serve")]
    assert s.token_source.startswith("vllm bench serve (tokenizer ")


def test_vllm_at_infinite_burstiness_is_a_constant_rate() -> None:
    """`--burstiness inf` (fixed gaps) is written as Infinity, which Python's json reads;
    PostgreSQL's JSON cannot hold it, so the stored settings say "inf"."""
    text = (DATA / "vllm_bench_serve.json").read_text()
    text = text.replace('"burstiness": 1.0', '"burstiness": Infinity')
    [run] = parse_result_file(json.loads(text), "fixed")
    [(stage, _)] = run.stages
    assert stage.label() == "constant 10/s"
    assert run.spec["burstiness"] == "inf" and run.spec["request_rate"] == 10.0
    saved = json.loads(json.dumps(run.spec, allow_nan=False))  # what the database gets
    assert saved["burstiness"] == "inf"
