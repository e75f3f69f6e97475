"""A queued benchmark, as the job worker runs it (`POST /api/lab/runs`, or a resume).

The worker stops a job by cancelling it (a deploy, a scale-down, a spot notice): the run is
then marked interrupted with what completed saved, and `POST .../resume` (or
`hearth bench run --resume`) goes on from there."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid

from hearth.lab.datasets import load_tokenizer
from hearth.lab.runner import Runner
from hearth.lab.service import Runs

log = logging.getLogger(__name__)


async def run_queued(runs: Runs, run_id: uuid.UUID) -> None:
    async with runs.exclusive(run_id):  # not beside a `hearth bench run` of the same run
        await _run(runs, run_id)


async def _run(runs: Runs, run_id: uuid.UUID) -> None:
    spec = await runs.begin(run_id)
    # The key is named, never stored: the worker's environment holds it.
    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    if spec.api_key_env and not key:
        await runs.end(run_id, "failed", f"${spec.api_key_env} is not set on the worker")
        return
    try:
        tokenizer = await asyncio.to_thread(load_tokenizer, spec.tokenizer)
        outcome = await Runner(spec, runs.store(run_id), tokenizer, api_key=key).run()
    except asyncio.CancelledError:
        await asyncio.shield(runs.end(run_id, "interrupted"))
        raise
    except Exception as exc:  # a bad tokenizer file, a target that is not a URL: said, kept
        log.warning("benchmark run %s failed: %s", run_id, exc)
        await runs.end(run_id, "failed", f"{type(exc).__name__}: {exc}"[:500])
        return
    if outcome.failure is not None:
        await runs.end(run_id, "failed", outcome.failure)
    else:
        await runs.end(run_id, "finished" if outcome.finished else "interrupted")
