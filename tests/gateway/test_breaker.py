"""The circuit breaker's states on a clock the test moves: closed → open after N failures
in a row → half-open after the cooldown, one trial at a time → closed or open again; and the
jittered backoff between retries."""

from __future__ import annotations

import asyncio
import random
import threading
from types import SimpleNamespace

import pytest

from hearth.engines.base import EngineLoad
from hearth.gateway.calls import Timing
from hearth.gateway.failover import RETRY_BACKOFF, RETRY_BACKOFF_CAP, Failover
from hearth.gateway.health import CLOSED, HALF_OPEN, OPEN, Health


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> Health:
    return Health(failures=3, cooldown=10.0, clock=clock)


def test_failures_in_a_row_eject_and_a_success_in_between_resets() -> None:
    health = breaker(Clock())
    for _ in range(2):
        health.failed("gpu", "m")
    health.succeeded("gpu", "m")
    for _ in range(2):
        health.failed("gpu", "m")
    assert health.state("gpu", "m") == CLOSED and health.admits("gpu", "m")
    health.failed("gpu", "m")
    assert health.state("gpu", "m") == OPEN and not health.admits("gpu", "m")
    assert health.admits("gpu", "other") and health.admits("cpu", "m")  # per deployment


def test_half_open_takes_one_trial_which_decides() -> None:
    clock = Clock()
    health = breaker(clock)
    for _ in range(3):
        health.failed("gpu", "m")
    clock.now += 10
    assert health.state("gpu", "m") == HALF_OPEN and health.admits("gpu", "m")
    health.begin("gpu", "m")
    assert not health.admits("gpu", "m")  # the trial is out: nobody else
    health.failed("gpu", "m")
    assert health.state("gpu", "m") == OPEN  # failed trial: a full cooldown again
    clock.now += 10
    health.begin("gpu", "m")
    health.abandoned("gpu", "m")  # a client error says nothing: the trial is given back
    assert health.admits("gpu", "m")
    health.begin("gpu", "m")
    health.succeeded("gpu", "m")
    assert health.state("gpu", "m") == CLOSED
    for _ in range(2):
        health.failed("gpu", "m")
    assert health.state("gpu", "m") == CLOSED  # the count started again


def test_probes_eject_at_once_and_readmit_after_the_cooldown() -> None:
    clock = Clock()
    health = breaker(clock)
    health.probe_failed("gpu", ["m", "n"])
    assert health.state("gpu", "m") == health.state("gpu", "n") == OPEN
    clock.now += 5
    health.probe_succeeded("gpu", ["m", "n"], EngineLoad(running=1))
    assert health.state("gpu", "m") == OPEN  # the cooldown still runs
    assert health.loads["gpu"] == EngineLoad(running=1)
    clock.now += 5
    health.probe_failed("gpu", ["m", "n"])  # failing probes keep extending it
    clock.now += 9
    assert health.state("gpu", "m") == OPEN
    clock.now += 1
    health.probe_succeeded("gpu", ["m", "n"], None)
    assert health.state("gpu", "m") == CLOSED and "gpu" not in health.loads


def test_retries_back_off_with_jitter_up_to_a_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    original = asyncio.sleep
    here = threading.get_ident()

    async def sleep(delay: float) -> None:
        # The patch is process-wide: servers other tests left running in their threads
        # (uvicorn ticks every 0.1 s) call it too, and are not this test's retries.
        if threading.get_ident() == here:
            slept.append(delay)
        await original(0 if threading.get_ident() == here else delay)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    failover = Failover(None, None, None, retries=8, rng=random.Random(1))  # type: ignore[arg-type]
    call = SimpleNamespace(timing=Timing())

    async def run() -> None:
        for retry in (1, 2, 3, 8, 8, 8):
            await failover._back_off(call, retry)  # type: ignore[arg-type]

    asyncio.run(run())
    assert 0 <= slept[0] <= RETRY_BACKOFF and slept[1] <= 2 * RETRY_BACKOFF
    assert slept[2] <= 4 * RETRY_BACKOFF
    assert all(delay <= RETRY_BACKOFF_CAP for delay in slept[3:])
    assert len(set(slept)) == len(slept)  # jittered, not a fixed schedule
    assert call.timing.upstream == pytest.approx(sum(slept))  # waiting on engines, not Hearth
