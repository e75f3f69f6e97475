"""What the gateway reports as its own time, checked by ordering rather than by wall-clock
bounds: `x-hearth-overhead-ms` (first byte read → response head) and the histogram
`hearth_gateway_added_seconds` (first byte read → last byte written) both leave out the time
spent waiting for the engine, a stream's waits between chunks included; the histogram
always holds at least what the header said. That both start at the request's first byte,
stamped by the server's protocol, tests/http/test_protocol.py checks."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._server import Running, running
from tests.fakes.openai_upstream import FakeOpenAIUpstream

HELLO = [{"role": "user", "content": "hi"}]
SLOW = 0.3  # seconds the upstream takes to answer model "waits"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(chunk_count=4, slow_delay=SLOW) as fake:
        yield fake


@pytest.fixture(scope="module")
def hearth(upstream: FakeOpenAIUpstream, postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    # One public name per test, so that each test reads its own histogram children.
    names = {"fast": "ok", "waits": "slow", "drips": "ok", "burst": "ok", "ollama": "ok"}
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("added-time"),
        health_check_interval=0,
        engines=[
            OpenAIEngineConfig(
                name="gpu",
                base_url=upstream.base_url,
                models=[ModelConfig(name=n, upstream=u) for n, u in names.items()],
            )
        ],
    )
    with running(create_app(settings)) as server:
        yield server


def _histogram(url: str, name: str, model: str) -> tuple[float, int]:
    """(sum, count) of a gateway histogram's child for `model` on deployment gpu."""
    text = httpx.get(f"{url}/metrics").text
    labels = re.escape(f'{{deployment="gpu",model="{model}"}}')
    found = {}
    for part in ("sum", "count"):
        match = re.search(rf"^{name}_{part}{labels} (\S+)$", text, re.M)
        found[part] = float(match[1]) if match else 0.0
    return found["sum"], int(found["count"])


def _one_sample(url: str, name: str, model: str, before: tuple[float, int]) -> float:
    """The value observed since `before`: exactly one sample, awaited (both histograms are
    observed as the request's bookkeeping ends, which may follow the last byte)."""
    deadline = time.monotonic() + 10
    while True:
        total, count = _histogram(url, name, model)
        if count > before[1] or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert count == before[1] + 1, (name, count, before)
    return total - before[0]


def _post(hearth: Running, model: str, *, stream: bool = False) -> tuple[float, float, str]:
    """(the client's latency to the last byte, x-hearth-overhead-ms in seconds, the body)."""
    body = {"model": model, "messages": HELLO, "stream": stream}
    sent = time.perf_counter()
    with httpx.stream("POST", f"{hearth.url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        text = response.read().decode()
    latency = time.perf_counter() - sent
    return latency, float(response.headers["x-hearth-overhead-ms"]) / 1000, text


def _samples(hearth: Running, model: str, *, stream: bool = False) -> tuple[float, float, float]:
    """(client latency, header, added-histogram sample) of one request."""
    name = "hearth_gateway_added_seconds"
    before = _histogram(hearth.url, name, model)
    latency, header, _ = _post(hearth, model, stream=stream)
    return latency, header, _one_sample(hearth.url, name, model, before)


def test_the_wait_for_the_engine_is_not_counted(hearth: Running) -> None:
    latency, header, added = _samples(hearth, "waits")
    assert latency >= SLOW  # the upstream took that long, the client waited for it
    # What Hearth reports is what is left once the engine's time is taken out.
    assert header <= added <= latency - SLOW


def test_a_streams_waits_between_chunks_are_not_counted(
    hearth: Running, upstream: FakeOpenAIUpstream
) -> None:
    upstream.chunk_delay = 0.15
    try:
        latency, header, added = _samples(hearth, "drips", stream=True)
    finally:
        upstream.chunk_delay = 0.0
    # 4 content chunks, the finish chunk, usage, [DONE]: 6 waits after the first chunk.
    waits = 6 * 0.15
    assert latency >= waits
    assert header <= added < waits  # counting the waits would put it above


def test_the_histogram_holds_at_least_the_header(
    hearth: Running, upstream: FakeOpenAIUpstream
) -> None:
    # JSON, and a long stream sent at once: what Hearth does after the head (writing the
    # body, relaying the rest of the stream) is in the histogram, not in the header.
    _, header, added = _samples(hearth, "fast")
    assert 0 <= header <= added
    upstream.chunk_count = 300
    try:
        latency, header, added = _samples(hearth, "burst", stream=True)
    finally:
        upstream.chunk_count = 4
    assert 0 <= header <= added <= latency


def test_the_header_histogram_holds_what_the_header_said(hearth: Running) -> None:
    name = "hearth_gateway_overhead_seconds"
    before = _histogram(hearth.url, name, "fast")
    _, header, _ = _post(hearth, "fast")
    # The header has two decimals of a millisecond.
    assert _one_sample(hearth.url, name, "fast", before) == pytest.approx(header, abs=1e-5)


def test_ollamas_routes_are_measured_from_the_request_too(hearth: Running) -> None:
    name = "hearth_gateway_added_seconds"
    before = _histogram(hearth.url, name, "ollama")
    sent = time.perf_counter()
    reply = httpx.post(
        f"{hearth.url}/api/chat", json={"model": "ollama", "messages": HELLO, "stream": True}
    )
    latency = time.perf_counter() - sent
    assert reply.status_code == 200 and reply.text.count("\n") >= 2
    assert 0 <= _one_sample(hearth.url, name, "ollama", before) <= latency
