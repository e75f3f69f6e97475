"""The load generator against an engine whose timings are known (tests/fakes' `timed`
model): what it measures, when it calls a run invalid, and how a stopped run resumes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from hearth.lab.datasets import Data, Lengths, WordCounter
from hearth.lab.metrics import Options, Slo
from hearth.lab.profiles import Profile, Stage, replay_stage
from hearth.lab.runner import MemoryStore, Runner, RunSpec
from tests.fakes.timed_engine import TimedEngine


@pytest.fixture(scope="module")
def engine() -> Iterator[TimedEngine]:
    with TimedEngine() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(engine: TimedEngine) -> None:
    engine.reset()


def spec(engine: TimedEngine, *stages: Stage, **changes: object) -> RunSpec:
    fields: dict[str, object] = {
        "base_url": engine.base_url,
        "model": "timed",
        "profile": Profile(stages=list(stages)),
        "data": Data(input=Lengths(mean=20), output=Lengths(mean=10)),
        "options": Options(warmup=0, cooldown=0),
    }
    return RunSpec.model_validate(fields | changes)


def run(spec: RunSpec, store: MemoryStore | None = None, **kw: object):  # type: ignore[no-untyped-def]
    runner = Runner(spec, store or MemoryStore(), WordCounter(), **kw)  # type: ignore[arg-type]
    return asyncio.run(runner.run())


def test_it_measures_what_the_engine_does(engine: TimedEngine) -> None:
    engine.first_delay, engine.chunk_delay = 0.05, 0.01
    outcome = run(spec(engine, Stage(kind="concurrency", concurrency=4, requests=12)))
    assert outcome.finished
    [(_, s)] = outcome.summaries
    assert (s.requests, s.counted, s.succeeded, s.failed) == (12, 12, 12, 0)
    assert s.valid, s.invalid_because
    # TTFT at least the engine's first delay; TPOT at least its gap, neither far above.
    ttft, tpot = s.ttft.percentiles["p50"][0], s.tpot.percentiles["p50"][0]
    assert ttft >= 0.05 and tpot >= 0.01 and ttft > tpot  # never under what the engine took
    assert s.ttft.count == 12 and s.itl.count == 12 * 9  # 10 chunks: 9 gaps each
    assert s.output_tokens == 120 and s.token_source == "server"
    assert s.token_mismatch == 0 and not s.flags
    low, high = s.ttft.percentiles["p95"][1:]
    assert low <= s.ttft.percentiles["p95"][0] <= high
    assert len(engine.bodies) == 12
    body = engine.bodies[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 10 and body["temperature"] == 0.0


def test_completions_and_a_token_count_mismatch_is_flagged(engine: TimedEngine) -> None:
    engine.usage_skew = 1  # the server says 11 tokens for 10 words
    outcome = run(spec(engine, Stage(kind="synchronous", requests=3), api="completions"))
    [(_, s)] = outcome.summaries
    assert s.succeeded == 3 and engine.bodies[-1]["prompt"]
    assert s.token_mismatch == pytest.approx(1 / 11)
    assert any("differ by 9.1%" in flag for flag in s.flags)


def test_an_open_loop_keeps_its_schedule_and_latency_counts_from_the_plan(
    engine: TimedEngine,
) -> None:
    engine.chunk_delay = 0.005
    store = MemoryStore()
    outcome = run(spec(engine, Stage(kind="constant", rate=40, requests=40)), store)
    [(_, s)] = outcome.summaries
    records = sorted(store.saved[0], key=lambda r: r.index)
    # The schedule is the plan, exactly; sends follow it in order, never ahead of it.
    assert s.planned_rate == pytest.approx(40)
    assert [r.planned for r in records] == pytest.approx([i / 40 for i in range(40)], abs=1e-6)
    assert all(r.sent >= r.planned - 0.001 for r in records)
    assert [r.index for r in sorted(records, key=lambda r: r.sent)] == list(range(40))
    assert s.achieved_rate is not None and s.achieved_rate <= 40 * 1.01
    # Latency from the plan is the latency from the send plus the dispatch delay.
    assert s.e2e_planned.mean >= s.e2e.mean


def test_a_client_that_falls_behind_is_invalid_and_says_why(engine: TimedEngine) -> None:
    # One request in flight at a time against 50/s of 0.1 s requests: the sends slip.
    engine.chunk_delay = 0.01
    outcome = run(spec(engine, Stage(kind="constant", rate=50, requests=15), max_concurrency=1))
    [(_, s)] = outcome.summaries
    assert not s.valid
    reasons = " ".join(s.invalid_because)
    assert "dispatch delay p99" in reasons and "fell behind" in reasons
    # Coordinated omission: from the plan, the queue the client built shows in the latency.
    assert s.e2e_planned.percentiles["p50"][0] > 2 * s.e2e.percentiles["p50"][0]


def test_failures_count_and_a_run_with_no_success_is_invalid(engine: TimedEngine) -> None:
    engine.fail_status = 500
    outcome = run(spec(engine, Stage(kind="synchronous", requests=4)))
    [(_, s)] = outcome.summaries
    assert (s.succeeded, s.failed) == (0, 4) and not s.valid
    assert s.errors == {"HTTP 500: the engine fell over": 4}
    assert "no request succeeded" in s.invalid_because


def test_a_target_that_fails_every_request_stops_the_run(engine: TimedEngine) -> None:
    """A wrong URL, model or key: the run stops, failed, instead of sending all it planned."""
    engine.fail_status = 404
    outcome = run(spec(engine, Stage(kind="constant", rate=500, requests=5000)))
    assert not outcome.finished and outcome.failure is not None
    assert "the first 20 requests failed: HTTP 404" in outcome.failure
    assert 20 <= len(engine.bodies) < 200
    # A server that is there but failing (503) is measured as it is, all the way.
    engine.fail_status = 503
    busy = run(spec(engine, Stage(kind="synchronous", requests=25)))
    assert busy.finished and busy.failure is None
    assert busy.summaries[0][1].failed == 25
    # Failures after a success are results (an overloaded server), not a reason to stop.
    engine.fail_status = None
    mixed = run(spec(engine, Stage(kind="synchronous", requests=3)))
    assert mixed.finished and mixed.failure is None


def test_goodput_counts_requests_that_meet_the_slo(engine: TimedEngine) -> None:
    engine.first_delay, engine.chunk_delay = 0.03, 0.002
    tight = Options(warmup=0, cooldown=0, slo=Slo(ttft=0.001))
    loose = Options(warmup=0, cooldown=0, slo=Slo(ttft=5, tpot=5))
    stage = Stage(kind="synchronous", requests=4)
    [(_, s)] = run(spec(engine, stage, options=tight)).summaries
    assert s.slo_attainment == 0 and s.goodput == 0
    [(_, s)] = run(spec(engine, stage, options=loose)).summaries
    assert s.slo_attainment == 1 and s.goodput == pytest.approx(s.request_throughput)


def test_a_replayed_trace_asks_its_own_lengths(engine: TimedEngine) -> None:
    stage = replay_stage(
        [{"timestamp": 0.05 * i, "input_tokens": 5 + i, "output_tokens": 2 + i} for i in range(6)]
    )
    store = MemoryStore()
    asyncio.run(Runner(spec(engine, stage), store, WordCounter()).run())
    assert sorted(b["max_tokens"] for b in engine.bodies) == [2, 3, 4, 5, 6, 7]
    records = sorted(store.saved[0], key=lambda r: r.index)
    assert [r.input_tokens for r in records] == [5, 6, 7, 8, 9, 10]
    assert [r.server_output_tokens for r in records] == [2, 3, 4, 5, 6, 7]


def test_warm_up_and_cool_down_are_run_but_not_counted(engine: TimedEngine) -> None:
    options = Options(warmup=0.2, cooldown=0.1)
    [(_, s)] = run(spec(engine, Stage(kind="synchronous", requests=10), options=options)).summaries
    assert (s.requests, s.counted) == (10, 7) and len(engine.bodies) == 10


def test_a_stopped_run_resumes_where_it_stopped(engine: TimedEngine) -> None:
    """Stopped mid-sweep (a spot notice), then started again on the same checkpoints: every
    request of every stage sent and recorded once, the cut-off ones sent again, and the
    same stages and counts as a run that was never stopped."""
    engine.chunk_delay = 0.01  # 0.1 s a request
    sweep = RunSpec(
        base_url=engine.base_url,
        model="timed",
        profile=Profile(sweep=2, requests_per_stage=12),
        data=Data(input=Lengths(mean=20), output=Lengths(mean=10)),
        options=Options(warmup=0, cooldown=0),
    )
    whole = asyncio.run(Runner(sweep, MemoryStore(), WordCounter()).run())
    assert whole.finished and len(whole.summaries) == 4

    engine.reset()
    engine.chunk_delay = 0.01
    store = MemoryStore()
    first = Runner(sweep, store, WordCounter(), grace=0.0)

    async def stopped_midway() -> bool:
        task = asyncio.ensure_future(first.run())
        while len(engine.bodies) < 6:  # noqa: ASYNC110 (the engine is in another thread)
            await asyncio.sleep(0.005)
        first.stop()
        return (await task).finished

    assert asyncio.run(stopped_midway()) is False
    kept = len(store.saved[0])
    cut = len(engine.bodies) - kept  # in flight at the stop, given no grace: not recorded
    assert 5 <= kept < 12 and cut in (0, 1) and store.saved_stages[0].summary is None
    second = asyncio.run(Runner(sweep, store, WordCounter()).run())
    assert second.finished
    assert [st.kind for st, _ in second.summaries] == [st.kind for st, _ in whole.summaries]
    for i, (stage, summary) in enumerate(second.summaries):
        indices = sorted(r.index for r in store.saved[i])
        assert indices == list(range(stage.requests))  # each once, none lost
        assert summary.succeeded == stage.requests and summary.valid, summary.invalid_because
        assert summary.counted == whole.summaries[i][1].counted
    assert {r.segment for r in store.saved[0]} == {0, 1}
    assert {r.segment for r in store.saved[1]} == {0}
    # Sent again: only what was cut off; what was recorded was not asked twice.
    assert len(engine.bodies) == 4 * 12 + cut
