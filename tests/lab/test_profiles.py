"""Load profiles: when each request is planned to go out."""

from __future__ import annotations

import statistics
from itertools import pairwise

import pytest
from pydantic import ValidationError

from hearth.lab.profiles import Profile, Stage, offsets, replay_stage, sweep_rates


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in pairwise(times)]


def test_constant_rate_is_evenly_spaced() -> None:
    got = offsets(Stage(kind="constant", rate=4, requests=5), seed=0)
    assert got == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_poisson_and_gamma_have_the_asked_mean_and_the_same_schedule_for_a_seed() -> None:
    poisson = Stage(kind="poisson", rate=50, requests=4000)
    times = offsets(poisson, seed=7)
    assert times == offsets(poisson, seed=7) and times != offsets(poisson, seed=8)
    assert statistics.mean(_gaps(times)) == pytest.approx(1 / 50, rel=0.05)
    # Exponential gaps: their spread equals their mean (coefficient of variation 1).
    assert statistics.stdev(_gaps(times)) / statistics.mean(_gaps(times)) == pytest.approx(
        1, rel=0.1
    )
    bursty = offsets(Stage(kind="gamma", rate=50, requests=4000, burstiness=0.25), seed=7)
    steady = offsets(Stage(kind="gamma", rate=50, requests=4000, burstiness=4), seed=7)
    cv = {
        k: statistics.stdev(_gaps(t)) / statistics.mean(_gaps(t))
        for k, t in (("b", bursty), ("s", steady))
    }
    # Gamma of shape k: coefficient of variation 1/sqrt(k); the mean stays 1/rate.
    assert cv["b"] == pytest.approx(2.0, rel=0.15) and cv["s"] == pytest.approx(0.5, rel=0.15)
    assert statistics.mean(_gaps(bursty)) == pytest.approx(1 / 50, rel=0.1)


def test_replay_starts_at_zero_and_keeps_the_trace() -> None:
    stage = Stage(kind="replay", requests=3, offsets=[10.0, 10.5, 12.0])
    assert offsets(stage, seed=0) == [0.0, 0.5, 2.0]


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "constant", "requests": 3},  # no rate
        {"kind": "concurrency", "requests": 3},  # no concurrency
        {"kind": "synchronous", "requests": 3, "rate": 2},  # a rate it cannot honour
        {"kind": "replay", "requests": 2, "offsets": [1.0]},
        {"kind": "replay", "requests": 2, "offsets": [2.0, 1.0]},
        {"kind": "poisson", "requests": 3, "rate": 1, "unknown": 1},
        {"kind": "poisson", "requests": 3, "rate": 1, "burstiness": 4},  # gamma's, not Poisson's
    ],
)
def test_a_stage_it_cannot_honour_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Stage.model_validate(bad)


def test_a_sweep_runs_synchronous_then_throughput_then_rates_between() -> None:
    profile = Profile(sweep=3, requests_per_stage=10)
    assert [s.kind for s in profile.first_stages()] == ["synchronous", "throughput"]
    later = profile.later_stages(2.0, 10.0)
    assert [s.rate for s in later] == [4.0, 6.0, 8.0] == sweep_rates(2.0, 10.0, 3)
    with pytest.raises(ValidationError):
        Profile()
    with pytest.raises(ValidationError):
        Profile(sweep=2, stages=[Stage(kind="synchronous", requests=1)])


def test_a_trace_replays_its_times_and_lengths_in_time_order() -> None:
    trace = [
        {"timestamp": 12.0, "input_tokens": 30, "output_tokens": 4},
        {"timestamp": 10.0, "input_tokens": 10, "output_tokens": 2},
        {"timestamp": 10.5, "input_tokens": 20, "output_tokens": 3},
    ]
    stage = replay_stage(trace)
    assert offsets(stage, seed=0) == [0.0, 0.5, 2.0]
    assert stage.lengths == [(10, 2), (20, 3), (30, 4)]
    assert replay_stage([3, 1, 2]).offsets == [1.0, 2.0, 3.0] and replay_stage([1]).lengths is None
    for bad in (
        [],
        [{"time": 1}],
        [{"timestamp": 1, "input_tokens": 3, "output_tokens": 2}, {"timestamp": 2}],
    ):
        with pytest.raises(ValueError):
            replay_stage(bad)  # type: ignore[arg-type]
