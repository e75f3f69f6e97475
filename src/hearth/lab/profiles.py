"""Load profiles: when each request of a stage is planned to go out.

Open-loop profiles (constant, Poisson, gamma, replay) fix every send time in advance, whatever
the server does; latency then counts from the planned send, so a server that falls behind
cannot slow the client down and hide its queue (coordinated omission). Closed-loop profiles
(synchronous, concurrency, throughput) send when a slot frees: the planned time is that
moment, and the delay to the actual send is the client's own lag.

A sweep is several stages: synchronous, then throughput (as fast as the server takes it),
then constant rates evenly between the two measured rates, as GuideLLM's sweep does.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OPEN_LOOP = frozenset({"constant", "poisson", "gamma", "replay"})
CLOSED_LOOP = frozenset({"synchronous", "concurrency", "throughput"})
THROUGHPUT_CONCURRENCY = 512  # "as fast as it takes": this many in flight at most


class Stage(BaseModel):
    """One stretch of load with one shape."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[
        "synchronous", "concurrency", "throughput", "constant", "poisson", "gamma", "replay"
    ]
    requests: int = Field(ge=1, le=1_000_000)
    rate: float | None = Field(default=None, gt=0, description="Requests/s (open loop).")
    concurrency: int | None = Field(default=None, ge=1, le=100_000)
    burstiness: float = Field(
        default=1.0,
        gt=0,
        description="Gamma shape: 1 is Poisson, below 1 burstier, above 1 steadier.",
    )
    offsets: list[float] | None = Field(
        default=None, description="Replay: each request's send time from the stage's start."
    )
    lengths: list[tuple[int, int]] | None = Field(
        default=None,
        description="Replay: each request's input and output tokens, as the trace has them "
        "(synthetic prompts of exactly those lengths; else the run's data spec).",
    )

    @model_validator(mode="after")
    def _complete(self) -> Stage:
        if self.kind in {"constant", "poisson", "gamma"} and self.rate is None:
            raise ValueError(f"a {self.kind} stage needs a rate")
        if self.kind == "concurrency" and self.concurrency is None:
            raise ValueError("a concurrency stage needs a concurrency")
        if self.kind == "replay":
            if not self.offsets or len(self.offsets) != self.requests:
                raise ValueError("a replay stage needs one offset per request")
            if any(b < a for a, b in zip(self.offsets, self.offsets[1:], strict=False)):
                raise ValueError("replay offsets must not go back in time")
        if self.kind != "replay" and (self.offsets is not None or self.lengths is not None):
            raise ValueError("offsets and lengths are for replay stages only")
        if self.lengths is not None:
            if len(self.lengths) != self.requests:
                raise ValueError("a replay stage's lengths need one pair per request")
            if any(i < 1 or o < 1 for i, o in self.lengths):
                raise ValueError("replayed lengths must be at least one token")
        if self.kind not in OPEN_LOOP - {"replay"} and self.rate is not None:
            raise ValueError(f"a {self.kind} stage takes no rate")
        if self.kind != "gamma" and self.burstiness != 1.0:
            raise ValueError(f"a {self.kind} stage takes no burstiness (gamma stages do)")
        if self.kind != "concurrency" and self.concurrency is not None:
            raise ValueError(f"a {self.kind} stage takes no concurrency")
        return self

    @property
    def open_loop(self) -> bool:
        return self.kind in OPEN_LOOP

    @property
    def slots(self) -> int:
        """How many requests a closed-loop stage keeps in flight."""
        if self.kind == "synchronous":
            return 1
        if self.kind == "concurrency":
            assert self.concurrency is not None
            return self.concurrency
        return min(self.requests, THROUGHPUT_CONCURRENCY)

    def label(self) -> str:
        if self.kind == "concurrency":
            return f"concurrency {self.concurrency}"
        if self.rate is not None:
            extra = f", burstiness {self.burstiness:g}" if self.kind == "gamma" else ""
            return f"{self.kind} {self.rate:g}/s{extra}"
        return self.kind


def replay_stage(trace: list[object]) -> Stage:
    """A replay stage from a trace: send times in seconds (numbers), or objects with a
    `timestamp` (seconds) and optionally `input_tokens` and `output_tokens`, in any order
    (sorted by time here)."""
    if not trace:
        raise ValueError("the trace is empty")
    if all(isinstance(t, int | float) and not isinstance(t, bool) for t in trace):
        times = sorted(float(t) for t in trace)  # type: ignore[arg-type]
        return Stage(kind="replay", requests=len(times), offsets=times)
    rows = []
    for i, row in enumerate(trace):
        if not isinstance(row, dict) or not isinstance(row.get("timestamp"), int | float):
            raise ValueError(f"trace entry {i}: a number, or an object with a timestamp")
        rows.append(row)
    rows.sort(key=lambda r: r["timestamp"])
    sized = [r for r in rows if "input_tokens" in r or "output_tokens" in r]
    if sized and len(sized) != len(rows):
        raise ValueError("give input_tokens and output_tokens for every trace entry or none")
    lengths = None
    if sized:
        try:
            lengths = [(int(r["input_tokens"]), int(r["output_tokens"])) for r in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"trace lengths: {exc}") from exc
    return Stage(
        kind="replay",
        requests=len(rows),
        offsets=[float(r["timestamp"]) for r in rows],
        lengths=lengths,
    )


def offsets(stage: Stage, seed: int) -> list[float]:
    """An open-loop stage's planned send times, in seconds from its start: the same for the
    same stage and seed (a resumed run sends on the schedule it would have)."""
    if stage.kind == "replay":
        assert stage.offsets is not None
        first = stage.offsets[0]
        return [t - first for t in stage.offsets]
    assert stage.rate is not None
    if stage.kind == "constant":
        return [i / stage.rate for i in range(stage.requests)]
    rng = random.Random(seed)
    # Gamma with shape k and scale 1/(rate·k) has mean 1/rate; k = 1 is the exponential.
    shape = 1.0 if stage.kind == "poisson" else stage.burstiness
    t, out = 0.0, []
    for _ in range(stage.requests):
        out.append(t)
        t += rng.gammavariate(shape, 1.0 / (stage.rate * shape))
    return out


def sweep_rates(synchronous: float, maximum: float, count: int) -> list[float]:
    """The constant rates of a sweep between its measured synchronous and maximum rates,
    evenly spaced, both ends excluded (they were measured already)."""
    if count <= 0:
        return []
    low, high = min(synchronous, maximum), max(synchronous, maximum)
    step = (high - low) / (count + 1)
    return [round(low + step * (i + 1), 6) for i in range(count)]


class Profile(BaseModel):
    """A run's load: its stages, or a sweep that makes them."""

    model_config = ConfigDict(extra="forbid")

    stages: list[Stage] = Field(default_factory=list, max_length=100)
    sweep: int | None = Field(
        default=None,
        ge=0,
        le=50,
        description="Sweep: synchronous, throughput, then this many constant rates between.",
    )
    requests_per_stage: int = Field(default=100, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _one_shape(self) -> Profile:
        if self.sweep is None and not self.stages:
            raise ValueError("give stages or a sweep")
        if self.sweep is not None and self.stages:
            raise ValueError("give stages or a sweep, not both")
        return self

    def first_stages(self) -> list[Stage]:
        """The stages known before anything ran (a sweep's rates come from its first two)."""
        if self.sweep is None:
            return list(self.stages)
        n = self.requests_per_stage
        return [Stage(kind="synchronous", requests=n), Stage(kind="throughput", requests=n)]

    def later_stages(self, synchronous_rate: float, maximum_rate: float) -> list[Stage]:
        if self.sweep is None:
            return []
        return [
            Stage(kind="constant", rate=r, requests=self.requests_per_stage)
            for r in sweep_rates(synchronous_rate, maximum_rate, self.sweep)
        ]
