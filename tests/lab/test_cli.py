"""`hearth bench run` as a process: a spot notice (SIGTERM) mid-sweep, then the same command
again, gives the same run as one never stopped; the readable refusals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hearth.db.session import Database
from hearth.lab.service import Runs
from tests.fakes.timed_engine import TimedEngine

HEARTH = [sys.executable, "-m", "hearth"]


@pytest.fixture(scope="module")
def engine() -> Iterator[TimedEngine]:
    with TimedEngine() as server:
        yield server


def _env(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    return {**env, "HEARTH_DATA_DIR": str(tmp_path), "HEARTH_DATABASE_URL": database_url}


def _command(engine: TimedEngine, run_id: uuid.UUID) -> list[str]:
    return [
        *HEARTH, "bench", "run", "--url", engine.base_url, "--model", "timed",
        "--stage", "sweep:2", "--requests", "20", "--output-tokens", "8",
        "--warmup", "0", "--cooldown", "0", "--run-id", str(run_id),
        "--stopped-exit-code", "75", "--grace", "0",
    ]  # fmt: skip


def _runs(database_url: str) -> tuple[Database, Runs]:
    database = Database(database_url, pool_size=1)
    return database, Runs(database)


async def _stored(database_url: str, run_id: uuid.UUID):  # type: ignore[no-untyped-def]
    database, runs = _runs(database_url)
    try:
        return await runs.get(run_id), await runs.records(run_id)
    finally:
        await database.close()


def test_a_run_stopped_mid_sweep_goes_on_and_ends_as_if_never_stopped(
    engine: TimedEngine, database_url: str, tmp_path: Path
) -> None:
    engine.reset()
    engine.chunk_delay = 0.005  # 8 tokens: about 40 ms a request
    env = _env(tmp_path, database_url)
    whole_id, cut_id = uuid.uuid4(), uuid.uuid4()
    whole = subprocess.run(
        _command(engine, whole_id), env=env, capture_output=True, text=True, timeout=300
    )
    assert whole.returncode == 0, whole.stderr
    sent_whole = len(engine.bodies)

    engine.bodies.clear()
    proc = subprocess.Popen(_command(engine, cut_id), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(engine.bodies) < 30 and time.monotonic() < deadline:  # into the second stage
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err
    assert f"hearth bench run --resume {cut_id}" in err
    stopped, _ = asyncio.run(_stored(database_url, cut_id))
    assert stopped.status == "interrupted"
    assert any(s.summary is None for s in stopped.stages)  # mid-sweep, not at its end

    again = subprocess.run(
        _command(engine, cut_id), env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    (run_a, rec_a), (run_b, rec_b) = (
        asyncio.run(_stored(database_url, i)) for i in (whole_id, cut_id)
    )
    assert run_b.status == "finished" and run_b.attempts == 2
    # The same stages, each with every request recorded once and succeeded, as uninterrupted.
    assert [s.spec["kind"] for s in run_a.stages] == [s.spec["kind"] for s in run_b.stages]
    assert len(run_b.stages) == 4
    for a, b in zip(run_a.stages, run_b.stages, strict=True):
        assert a.summary and b.summary and a.valid and b.valid, b.summary
        for key in ("requests", "counted", "succeeded", "output_tokens"):
            assert a.summary[key] == b.summary[key], key
    assert sorted((s, r.index) for s, r in rec_a) == sorted((s, r.index) for s, r in rec_b)
    # Only what was cut off was sent again: at most the in-flight ones of the stop.
    assert sent_whole <= len(engine.bodies) <= sent_whole + 20
    # The same command once more: finished, nothing sent.
    before = len(engine.bodies)
    once_more = subprocess.run(
        _command(engine, cut_id), env=env, capture_output=True, text=True, timeout=120
    )
    assert once_more.returncode == 0 and "is finished" in once_more.stderr
    assert len(engine.bodies) == before


def test_two_processes_never_drive_one_run_at_once(
    engine: TimedEngine, database_url: str, tmp_path: Path
) -> None:
    """A chart upgrade starts the new pod before the old one has stopped: it waits for the
    run's lock, then finds the run finished, and sends nothing."""
    engine.reset()
    engine.chunk_delay = 0.1  # 0.8 s a request: the run outlasts the second one's start
    env = _env(tmp_path, database_url)
    run_id = uuid.uuid4()
    command = [*_command(engine, run_id)]
    command[command.index("sweep:2")] = "synchronous"
    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not engine.bodies and time.monotonic() < deadline:
        time.sleep(0.01)
    second = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    _, first_err = first.communicate(timeout=120)
    _, second_err = second.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert "waiting for it to stop" in second_err and "is finished" in second_err
    assert len(engine.bodies) == 20  # one run's requests, not two


def test_bad_options_are_readable_refusals(tmp_path: Path, database_url: str) -> None:
    env = _env(tmp_path, database_url)
    bad = subprocess.run(
        [*HEARTH, "bench", "run", "--stage", "poisson"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "poisson: not a stage" in bad.stderr
    bad = subprocess.run(
        [*HEARTH, "bench", "run", "--warmup", "0.9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "warmup" in bad.stderr
