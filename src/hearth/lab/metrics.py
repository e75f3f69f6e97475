"""A stage's numbers from its records, as defined in docs/lab-metrics.md (keep the two in
step). Every latency is in seconds; every distribution has percentiles with a bootstrap 95%
confidence interval; warm-up and cool-down requests are run but not counted."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hearth.lab.profiles import Stage
from hearth.lab.records import RequestRecord

PERCENTILES = (50, 90, 95, 99)
BOOTSTRAP_SAMPLES = 1000
MISMATCH_LIMIT = 0.02  # server and client token counts further apart than this: flagged
RATE_FLOOR = 0.95  # a client that sent below this share of the planned rate fell behind
DISPATCH_LIMIT = 0.010  # seconds: dispatch-delay p99 above this (or 5% of the mean gap)


class Slo(BaseModel):
    """Per-request objectives; a request meets the SLO when it meets each one given."""

    model_config = ConfigDict(extra="forbid")

    ttft: float | None = Field(default=None, gt=0, description="Seconds, from the send.")
    tpot: float | None = Field(default=None, gt=0, description="Seconds per output token.")
    e2e: float | None = Field(default=None, gt=0, description="Seconds, from the planned send.")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warmup: float = Field(
        default=0.1, ge=0, lt=0.5, description="Share of requests not counted at the start."
    )
    cooldown: float = Field(default=0.1, ge=0, lt=0.5, description="Share not counted at the end.")
    slo: Slo = Field(default_factory=Slo)
    dispatch_limit: float = Field(default=DISPATCH_LIMIT, gt=0)


class Distribution(BaseModel):
    count: int
    mean: float | None = None
    # "p95" → [value, low, high]: the percentile and its bootstrap 95% interval.
    percentiles: dict[str, list[float]] = Field(default_factory=dict)


class Summary(BaseModel):
    requests: int  # in the stage
    counted: int  # after warm-up and cool-down
    succeeded: int
    failed: int
    errors: dict[str, int] = Field(default_factory=dict)  # message → how many (counted ones)
    duration: float  # seconds of the counted window
    requested_rate: float | None = None  # the stage's own (open loop)
    planned_rate: float | None = None  # what its schedule planned for the counted ones
    achieved_rate: float | None = None  # sends per second actually made
    request_throughput: float = 0.0  # succeeded requests per second
    output_throughput: float = 0.0  # output tokens per second
    goodput: float | None = None  # requests per second meeting the SLO (when one is named)
    slo_attainment: float | None = None  # share of counted requests meeting it
    ttft: Distribution
    ttft_planned: Distribution
    tpot: Distribution
    itl: Distribution
    e2e: Distribution
    e2e_planned: Distribution
    dispatch_delay: Distribution
    output_tokens: int = 0
    token_source: str  # "server" or the client's tokenizer
    token_mismatch: float | None = None  # |server - client| / server over the counted ones
    flags: list[str] = Field(default_factory=list)
    valid: bool = True
    invalid_because: list[str] = Field(default_factory=list)


def distribution(values: Sequence[float], seed: int = 0) -> Distribution:
    """Mean and percentiles, each with a percentile-bootstrap 95% interval."""
    if not values:
        return Distribution(count=0)
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    samples = BOOTSTRAP_SAMPLES if data.size <= 5000 else 200
    # Resampled in blocks so that a large stage does not need one huge matrix.
    boot = np.empty((samples, len(PERCENTILES)))
    block = max(1, 2_000_000 // data.size)
    for start in range(0, samples, block):
        n = min(block, samples - start)
        picks = data[rng.integers(0, data.size, size=(n, data.size))]
        boot[start : start + n] = np.percentile(picks, PERCENTILES, axis=1).T
    point = np.percentile(data, PERCENTILES)
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return Distribution(
        count=int(data.size),
        mean=float(data.mean()),
        percentiles={
            f"p{p}": [float(point[i]), float(low[i]), float(high[i])]
            for i, p in enumerate(PERCENTILES)
        },
    )


def counted(records: Sequence[RequestRecord], options: Options) -> list[RequestRecord]:
    """The requests that count: warm-up and cool-down shares left out, in schedule order."""
    ordered = sorted(records, key=lambda r: r.index)
    head = math.floor(len(ordered) * options.warmup)
    tail = math.floor(len(ordered) * options.cooldown)
    return ordered[head : len(ordered) - tail]


def _window(records: Sequence[RequestRecord]) -> float:
    """Seconds of load: per uninterrupted segment, from the first planned send to the last
    end, summed (a resumed stage does not count the time it was stopped)."""
    total = 0.0
    for segment in {r.segment for r in records}:
        part = [r for r in records if r.segment == segment]
        total += max(r.end for r in part) - min(r.planned for r in part)
    return total


def _rate(times: list[tuple[int, float]]) -> float | None:
    """Events per second over segments: (count - 1) / span, summed per segment."""
    events, span = 0, 0.0
    for segment in {s for s, _ in times}:
        ts = sorted(t for s, t in times if s == segment)
        if len(ts) > 1:
            events += len(ts) - 1
            span += ts[-1] - ts[0]
    return events / span if span > 0 else None


def summarise(
    stage: Stage, records: Sequence[RequestRecord], options: Options, tokenizer: str
) -> Summary:
    """The stage's summary; `tokenizer` names what counted the client's tokens."""
    chosen = counted(records, options)
    ok = [r for r in chosen if r.ok]
    errors: dict[str, int] = {}
    for r in chosen:
        if not r.ok:
            errors[r.error or f"HTTP {r.status}"] = errors.get(r.error or f"HTTP {r.status}", 0) + 1
    duration = _window(chosen) if chosen else 0.0
    server_all = bool(ok) and all(r.server_output_tokens is not None for r in ok)
    tokens = [r.output_tokens() or 0 for r in ok]
    summary = Summary(
        requests=len(records),
        counted=len(chosen),
        succeeded=len(ok),
        failed=len(chosen) - len(ok),
        errors=dict(sorted(errors.items(), key=lambda kv: -kv[1])[:20]),
        duration=duration,
        requested_rate=stage.rate,
        planned_rate=_rate([(r.segment, r.planned) for r in chosen]) if stage.open_loop else None,
        achieved_rate=_rate([(r.segment, r.sent) for r in chosen]),
        request_throughput=len(ok) / duration if duration else 0.0,
        output_throughput=sum(tokens) / duration if duration else 0.0,
        ttft=distribution([r.first - r.sent for r in ok if r.first is not None]),
        ttft_planned=distribution([r.first - r.planned for r in ok if r.first is not None]),
        tpot=distribution(
            [
                (r.end - r.first) / (n - 1)
                for r, n in zip(ok, tokens, strict=True)
                if n > 1 and r.first is not None
            ]
        ),
        itl=distribution([b - a for r in ok for a, b in zip(r.chunks, r.chunks[1:], strict=False)]),
        e2e=distribution([r.end - r.sent for r in ok]),
        e2e_planned=distribution([r.end - r.planned for r in ok]),
        dispatch_delay=distribution([r.sent - r.planned for r in chosen]),
        output_tokens=sum(tokens),
        token_source="server" if server_all else f"client ({tokenizer})",
    )
    _tokens_check(summary, ok)
    _slo(summary, ok, tokens, options.slo)
    _self_check(summary, stage, chosen, options)
    return summary


def _tokens_check(summary: Summary, ok: list[RequestRecord]) -> None:
    both = [
        r for r in ok if r.server_output_tokens is not None and r.client_output_tokens is not None
    ]
    server = sum(r.server_output_tokens or 0 for r in both)
    if not both or not server:
        if ok and summary.token_source != "server":
            summary.flags.append(
                "the server reported no usage: output tokens are the client's count"
            )
        return
    client = sum(r.client_output_tokens or 0 for r in both)
    summary.token_mismatch = abs(server - client) / server
    if summary.token_mismatch > MISMATCH_LIMIT:
        summary.flags.append(
            f"server and client token counts differ by {summary.token_mismatch:.1%} "
            f"(server {server}, client {client}): the client's tokenizer is not the model's"
        )


def _slo(summary: Summary, ok: list[RequestRecord], tokens: list[int], slo: Slo) -> None:
    if slo.ttft is None and slo.tpot is None and slo.e2e is None:
        return

    def meets(r: RequestRecord, n: int) -> bool:
        if r.first is None:
            return False
        if slo.ttft is not None and r.first - r.sent > slo.ttft:
            return False
        if slo.tpot is not None and n > 1 and (r.end - r.first) / (n - 1) > slo.tpot:
            return False
        return not (slo.e2e is not None and r.end - r.planned > slo.e2e)

    good = sum(meets(r, n) for r, n in zip(ok, tokens, strict=True))
    summary.goodput = good / summary.duration if summary.duration else 0.0
    summary.slo_attainment = good / summary.counted if summary.counted else 0.0


def _self_check(
    summary: Summary, stage: Stage, chosen: list[RequestRecord], options: Options
) -> None:
    """A run whose client fell behind its own schedule measured the client: invalid."""
    why = summary.invalid_because
    if not summary.succeeded:
        why.append("no request succeeded")
    delay = summary.dispatch_delay.percentiles.get("p99")
    gap = 1.0 / summary.planned_rate if summary.planned_rate else 0.0
    limit = max(options.dispatch_limit, 0.05 * gap)
    if delay is not None and delay[0] > limit:
        why.append(
            f"dispatch delay p99 {delay[0] * 1000:.1f} ms is above {limit * 1000:.1f} ms: "
            "the client could not send on time"
        )
    if stage.open_loop and summary.planned_rate and summary.achieved_rate is not None:
        share = summary.achieved_rate / summary.planned_rate
        if share < RATE_FLOOR:
            why.append(
                f"sent {summary.achieved_rate:.2f}/s of {summary.planned_rate:.2f}/s planned "
                f"({share:.0%}): the client fell behind"
            )
    summary.valid = not why
