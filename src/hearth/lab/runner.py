"""Runs a benchmark's stages against its target, checkpointing as it goes.

Each completed request is saved in batches (every `SAVE_EVERY` seconds or `SAVE_BATCH`
records) and each stage's summary when the stage ends. A stop (SIGTERM: a spot node's
notice) stops scheduling, lets the requests in flight finish for up to `grace` seconds,
saves what completed, and returns; the requests it cut off were never recorded, so running
the same run again sends exactly those, on the rest of the stage's schedule, and a sweep
resumes at the stage it was in. A resumed stretch of a stage is a new `segment`: its time
off is not counted as load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hearth.lab import client
from hearth.lab._http import Connections, Origin
from hearth.lab.datasets import Data, Prompt, Tokenizer, prompts
from hearth.lab.metrics import Options, Summary, summarise
from hearth.lab.profiles import Profile, Stage, offsets
from hearth.lab.records import RequestRecord

log = logging.getLogger(__name__)

SAVE_EVERY = 2.0  # seconds
SAVE_BATCH = 500  # records
# A run whose first this-many requests were all refused stops, failed: a wrong URL, model or
# key would otherwise be hammered for the whole run (a million requests of connection
# refused). A server that is busy or failing (429, 5xx) is measured as it is.
FAIL_FAST = 20
MAX_STAGE_REQUESTS = 1_000_000


class RunSpec(BaseModel):
    """What a run measures and how: stored with the run (never its key)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(max_length=2000, description="An OpenAI-compatible base URL (…/v1).")
    model: str = Field(max_length=200)
    api: str = Field(default="chat", pattern="^(chat|completions)$")
    api_key_env: str | None = Field(
        default=None, max_length=200, description="The environment variable holding the key."
    )
    extra_body: dict[str, object] = Field(default_factory=dict)
    temperature: float | None = Field(default=0.0, ge=0, le=2)
    timeout: float = Field(default=600.0, gt=0, le=86_400)
    profile: Profile
    data: Data = Field(default_factory=Data)
    options: Options = Field(default_factory=Options)
    tokenizer: str | None = Field(default=None, description="A .gguf or tokenizer.json path.")
    seed: int = 0
    max_concurrency: int | None = Field(
        default=None, ge=1, le=100_000, description="Open loop: most requests in flight."
    )

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        Origin.parse(value)  # ValueError: not an http(s) URL with a host
        return value


@dataclass
class StoredStage:
    index: int
    stage: Stage
    summary: Summary | None = None  # set when the stage is finished


class Store(Protocol):
    """Where a run keeps its checkpoints: PostgreSQL (lab.service) or memory (tests, bench)."""

    async def stages(self) -> list[StoredStage]: ...

    async def add_stage(self, index: int, stage: Stage) -> None: ...

    async def records(self, stage_index: int) -> list[RequestRecord]: ...

    async def save_records(self, stage_index: int, records: list[RequestRecord]) -> None: ...

    async def finish_stage(self, stage_index: int, summary: Summary) -> None: ...


@dataclass
class MemoryStore:
    saved_stages: list[StoredStage] = field(default_factory=list)
    saved: dict[int, list[RequestRecord]] = field(default_factory=dict)

    async def stages(self) -> list[StoredStage]:
        return list(self.saved_stages)

    async def add_stage(self, index: int, stage: Stage) -> None:
        self.saved_stages.append(StoredStage(index, stage))

    async def records(self, stage_index: int) -> list[RequestRecord]:
        return list(self.saved.get(stage_index, []))

    async def save_records(self, stage_index: int, records: list[RequestRecord]) -> None:
        self.saved.setdefault(stage_index, []).extend(records)

    async def finish_stage(self, stage_index: int, summary: Summary) -> None:
        self.saved_stages[stage_index].summary = summary


Progress = Callable[[int, str, int, int], None]  # stage index, label, done, total


@dataclass
class Outcome:
    finished: bool  # False: stopped before the end (resume it, unless `failure` says why not)
    summaries: list[tuple[Stage, Summary]]
    failure: str | None = None  # the target failed every request it was sent: not resumable


class Runner:
    def __init__(
        self,
        spec: RunSpec,
        store: Store,
        tokenizer: Tokenizer,
        *,
        api_key: str | None = None,
        progress: Progress | None = None,
        grace: float = 30.0,
    ) -> None:
        self.spec, self.store, self.tokenizer = spec, store, tokenizer
        self.target = client.Target(
            base_url=spec.base_url,
            model=spec.model,
            api="chat" if spec.api == "chat" else "completions",
            api_key=api_key,
            extra_body=dict(spec.extra_body),
            temperature=spec.temperature,
            timeout=spec.timeout,
        )
        self.progress = progress
        self.grace = grace
        self.stopping = asyncio.Event()  # set by stop(): a spot notice, Ctrl-C
        self.failure: str | None = None
        self._failed_in_a_row = 0
        self._succeeded = False

    def _count_result(self, record: RequestRecord) -> None:
        if record.ok:
            self._succeeded = True
            return
        if not _hopeless(record):
            return  # a busy or slow server (429, 5xx, a timeout) is a result, not a mistake
        self._failed_in_a_row += 1
        if not self._succeeded and self._failed_in_a_row >= FAIL_FAST and self.failure is None:
            self.failure = f"the first {FAIL_FAST} requests failed: {record.error or record.status}"
            self.stopping.set()

    def stop(self) -> None:
        """Stop scheduling; in-flight requests get `grace` seconds; what completed is kept."""
        self.stopping.set()

    async def run(self) -> Outcome:
        stored = await self.store.stages()
        planned = self.spec.profile.first_stages()
        for index, stage in enumerate(planned[len(stored) :], start=len(stored)):
            await self.store.add_stage(index, stage)
            stored.append(StoredStage(index, stage))
        conns = Connections(self.target.origin())
        try:
            i = 0
            while i < len(stored):
                current = stored[i]
                if current.summary is None:
                    summary = await self._stage(conns, current)
                    if summary is None:
                        return Outcome(False, _done(stored), self.failure)
                    current.summary = summary
                i += 1
                if i == len(stored):
                    stored += await self._later_stages(stored)
        finally:
            await conns.close()
        return Outcome(True, _done(stored))

    async def _later_stages(self, stored: list[StoredStage]) -> list[StoredStage]:
        """A sweep's constant rates, once its synchronous and throughput stages ran."""
        if self.spec.profile.sweep is None or len(stored) != 2:
            return []
        sync, top = (s.summary for s in stored)
        assert sync is not None and top is not None
        later = []
        for index, stage in enumerate(
            self.spec.profile.later_stages(sync.request_throughput, top.request_throughput),
            start=2,
        ):
            await self.store.add_stage(index, stage)
            later.append(StoredStage(index, stage))
        return later

    def _prompts(self, stage_index: int, stage: Stage) -> list[Prompt]:
        data = self.spec.data.model_copy(update={"seed": self.spec.data.seed + stage_index})
        return prompts(data, self.tokenizer, stage.requests, stage.lengths)

    async def _stage(self, conns: Connections, stored: StoredStage) -> Summary | None:
        stage, index = stored.stage, stored.index
        before = await self.store.records(index)
        done = {r.index for r in before}
        segment = max((r.segment for r in before), default=-1) + 1
        pending = [i for i in range(stage.requests) if i not in done]
        asked = self._prompts(index, stage)
        bodies = {i: self.target.body(asked[i]) for i in pending}
        raws = {
            i: conns.request(self.target.path, bodies[i], self.target.headers()) for i in pending
        }
        start = time.perf_counter()
        batch = _Batch(self, index, len(done), stage, start)
        if pending and not self.stopping.is_set():
            if stage.open_loop:
                await self._open_loop(
                    conns, stage, index, pending, raws, asked, batch, segment, start
                )
            else:
                await self._closed_loop(conns, stage, pending, raws, asked, batch, segment, start)
        await batch.flush()
        records = before + batch.kept
        if len(records) < stage.requests:
            return None  # stopped: resumed later
        summary = summarise(stage, records, self.spec.options, self.tokenizer.name)
        await self.store.finish_stage(index, summary)
        return summary

    async def _one(
        self, conns: Connections, raw: bytes, record: RequestRecord, batch: _Batch
    ) -> None:
        texts: list[str] = []
        await client.send(conns, raw, record, texts, self.target.timeout)
        batch.add(record, "".join(texts))

    async def _open_loop(
        self,
        conns: Connections,
        stage: Stage,
        index: int,
        pending: list[int],
        raws: dict[int, bytes],
        asked: list[Prompt],
        batch: _Batch,
        segment: int,
        start: float,
    ) -> None:
        schedule = offsets(stage, self.spec.seed * 1000 + index)
        base = schedule[pending[0]]  # a resumed stage goes on from where its schedule was
        limit = asyncio.Semaphore(self.spec.max_concurrency or MAX_STAGE_REQUESTS)
        inflight: set[asyncio.Task[None]] = set()
        stop = asyncio.ensure_future(self.stopping.wait())

        async def one(record: RequestRecord, raw: bytes) -> None:
            async with limit:
                await self._one(conns, raw, record, batch)

        try:
            for i in pending:
                planned = start + schedule[i] - base
                delay = planned - time.perf_counter()
                if delay > 0:
                    await asyncio.wait({stop}, timeout=delay)
                if self.stopping.is_set():
                    break
                record = RequestRecord(
                    index=i, planned=planned, input_tokens=asked[i].input_tokens, segment=segment
                )
                task = asyncio.ensure_future(one(record, raws[i]))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                batch.maybe_flush()
            await self._drain(inflight, stop)
        finally:
            stop.cancel()

    async def _closed_loop(
        self,
        conns: Connections,
        stage: Stage,
        pending: list[int],
        raws: dict[int, bytes],
        asked: list[Prompt],
        batch: _Batch,
        segment: int,
        start: float,
    ) -> None:
        queue = list(reversed(pending))
        stop = asyncio.ensure_future(self.stopping.wait())

        async def worker() -> None:
            while queue and not self.stopping.is_set():
                i = queue.pop()
                # Closed loop: planned the moment a slot is free; the send follows at once.
                record = RequestRecord(
                    index=i,
                    planned=time.perf_counter(),
                    input_tokens=asked[i].input_tokens,
                    segment=segment,
                )
                await self._one(conns, raws[i], record, batch)
                batch.maybe_flush()

        workers = {asyncio.ensure_future(worker()) for _ in range(min(stage.slots, len(pending)))}
        try:
            await self._drain(workers, stop)
        finally:
            stop.cancel()

    async def _drain(self, tasks: set[asyncio.Task[None]], stop: asyncio.Future[object]) -> None:
        """Wait for the tasks; after a stop, for `grace` seconds more at most, then cancel."""
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(
                pending | {stop}, return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(stop)
            if stop in done:
                break
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.grace)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class _Batch:
    """Completed records on their way to the store, with times made relative to the start
    of the stage's segment, and the client's token count taken off the hot path."""

    def __init__(
        self, runner: Runner, stage_index: int, already: int, stage: Stage, start: float
    ) -> None:
        self.runner, self.stage_index, self.stage = runner, stage_index, stage
        self.start = start
        self.kept: list[RequestRecord] = []
        self._unsaved: list[tuple[RequestRecord, str]] = []
        self._last = time.perf_counter()
        self._saving: asyncio.Task[None] | None = None
        self.done = already

    def add(self, record: RequestRecord, text: str) -> None:
        t0 = self.start
        record.planned -= t0
        record.sent -= t0
        record.end -= t0
        record.first = None if record.first is None else record.first - t0
        record.chunks = [t - t0 for t in record.chunks]
        self._unsaved.append((record, text))
        self.runner._count_result(record)
        self.done += 1
        if self.runner.progress:
            self.runner.progress(
                self.stage_index, self.stage.label(), self.done, self.stage.requests
            )

    def maybe_flush(self) -> None:
        due = time.perf_counter() - self._last > SAVE_EVERY or len(self._unsaved) >= SAVE_BATCH
        if due and self._unsaved and (self._saving is None or self._saving.done()):
            self._saving = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        if (
            self._saving is not None
            and not self._saving.done()
            and asyncio.current_task() is not self._saving
        ):
            await self._saving
        taken, self._unsaved = self._unsaved, []
        self._last = time.perf_counter()
        if not taken:
            return
        texts = [text for _, text in taken]
        counts = await asyncio.to_thread(_count, self.runner.tokenizer, texts)
        records = [r for r, _ in taken]
        for record, n in zip(records, counts, strict=True):
            record.client_output_tokens = n
        await self.runner.store.save_records(self.stage_index, records)
        self.kept += records


def _hopeless(record: RequestRecord) -> bool:
    """A failure that the same request will meet every time: the target refused it (4xx
    but 429: a wrong model, key or parameter) or is not there (connection refused)."""
    if 400 <= record.status < 500 and record.status != 429:
        return True
    return record.status == 0 and "ConnectionRefused" in (record.error or "")


def _count(tokenizer: Tokenizer, texts: list[str]) -> list[int]:
    counts = []
    for text in texts:
        counts.append(len(tokenizer.encode(text)) if text else 0)
        # Run in a thread, this loop would keep the GIL from the event loop for up to the
        # switch interval (5 ms) at a time, again and again over a batch: the sends due
        # meanwhile go out late (dispatch delay p99 of 15-60 ms at 1,000 requests/s).
        # Giving it back after each text costs a microsecond.
        time.sleep(0)
    return counts


def _done(stored: list[StoredStage]) -> list[tuple[Stage, Summary]]:
    return [(s.stage, s.summary) for s in stored if s.summary is not None]
