"""Models with several deployments, through the real HTTP stack with the openai SDK: spread
by weight and by load, failover before the first byte and never after, fallback models,
circuit breaking, health probes and session affinity. The deployments are fake
OpenAI-compatible servers (tests/fakes) that can be killed, made to fail or to hang, and
made to report a queue."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from hearth.config import ModelConfig, OllamaEngineConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._server import Running, free_port, running
from tests.fakes.ollama_upstream import FakeOllama
from tests.fakes.openai_upstream import FakeOpenAIUpstream

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def a() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(chunk_count=3) as fake:
        yield fake


@pytest.fixture
def b() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(chunk_count=3) as fake:
        yield fake


def engine(name: str, fake: FakeOpenAIUpstream | None, *models: ModelConfig) -> OpenAIEngineConfig:
    url = fake.base_url if fake is not None else f"http://127.0.0.1:{free_port()}/v1"
    return OpenAIEngineConfig(
        name=name, base_url=url, connect_timeout=0.5, read_timeout=5, models=list(models)
    )


def chat(name: str = "m", upstream: str = "ok", **options: Any) -> ModelConfig:
    return ModelConfig(name=name, upstream=upstream, **options)


@pytest.fixture
def hearth_with(postgres, tmp_path_factory) -> Iterator[Callable[..., Running]]:  # type: ignore[no-untyped-def]
    """Start a Hearth with these engines and settings; stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(*engines: OpenAIEngineConfig | OllamaEngineConfig, **options: Any) -> Running:
            options.setdefault("health_check_interval", 0)
            settings = Settings(
                database_url=postgres.new_database(),
                data_dir=tmp_path_factory.mktemp("balancing"),
                engines=list(engines),
                **options,
            )
            return stack.enter_context(running(create_app(settings)))

        yield start


def sdk(hearth: Running, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{hearth.url}/v1", api_key="unused", max_retries=0, default_headers=headers
    )


def ask(client: openai.OpenAI, model: str = "m", *, stream: bool = False, text: str = "hi") -> str:
    messages = [{"role": "user", "content": text}]
    if stream:
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reply = client.chat.completions.create(model=model, messages=messages)
    return reply.choices[0].message.content or ""


def metric(hearth: Running, line_start: str) -> float:
    """The value of the first /metrics line that starts with `line_start`, 0 if none."""
    for line in httpx.get(f"{hearth.url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_one_model_two_engines_is_one_model_with_two_deployments(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    hearth = hearth_with(engine("a", a, chat()), engine("b", b, chat(), chat("only-b")))
    assert sorted(m.id for m in sdk(hearth).models.list()) == ["m", "only-b"]


def test_idle_requests_are_shared_by_weight(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    hearth = hearth_with(engine("a", a, chat(weight=3)), engine("b", b, chat(weight=1)))
    client = sdk(hearth)
    for _ in range(120):
        ask(client)
    # 3:1 is 90:30; the bounds hold but for a chance of about one in a million.
    assert a.chats + b.chats == 120 and 70 <= a.chats <= 108, (a.chats, b.chats)


def test_concurrent_requests_go_to_the_least_busy(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    hearth = hearth_with(engine("a", a, chat()), engine("b", b, chat()))
    a.chunk_delay = b.chunk_delay = 0.4  # each stream stays in flight for about a second
    client = sdk(hearth)
    results: list[str] = []

    def one() -> None:
        results.append(ask(client, stream=True))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # the picks see the previous requests in flight
    for thread in threads:
        thread.join()
    assert len(results) == 6 and all(results)
    assert (a.chats, b.chats) == (3, 3)


def test_engine_reported_queue_steers_requests(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    a.report, a.waiting = "vllm", 10  # vLLM's /metrics: ten requests queued
    b.report, b.running = "slots", 1  # llama.cpp's /slots: one of four slots busy
    hearth = hearth_with(engine("a", a, chat()), engine("b", b, chat()), health_check_interval=0.1)
    time.sleep(0.5)
    client = sdk(hearth)
    for _ in range(10):
        ask(client)
    assert (a.chats, b.chats) == (0, 10)
    assert metric(hearth, 'hearth_engine_requests_waiting{deployment="a"}') == 10
    a.waiting, b.running = 0, 4  # now b's slots are all taken and a is idle
    time.sleep(0.5)
    for _ in range(10):
        ask(client)
    assert a.chats == 10


def test_requests_keep_succeeding_when_a_deployment_is_killed(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    hearth = hearth_with(engine("a", a, chat()), engine("b", b, chat()))
    client = sdk(hearth)
    for i in range(30):
        if i == 10:
            a.kill()
            served_by_a = a.chats
        assert ask(client, stream=i % 2 == 1)
    assert a.chats == served_by_a and b.chats >= 20
    assert metric(hearth, 'hearth_gateway_retries_total{deployment="b",model="m"}') >= 1
    a.revive()


def test_retried_before_the_first_byte_on_5xx_and_connect_errors(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    a.fail_status = 500
    hearth = hearth_with(
        engine("a", a, chat()),
        engine("down", None, chat()),  # nothing listens there: connection refused
        engine("b", b, chat()),
        circuit_breaker_failures=100,  # keep them all in play
    )
    client = sdk(hearth)
    for i in range(20):
        assert ask(client, stream=i % 2 == 1)
    assert b.chats == 20 and a.chats > 0
    retries = metric(hearth, 'hearth_gateway_retries_total{deployment="b",model="m"}')
    assert retries > 0


def test_a_hung_deployment_times_out_and_fails_over(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    a.hang = 10
    hearth = hearth_with(engine("a", a, chat(timeout=0.3)), engine("b", b, chat(timeout=0.3)))
    client = sdk(hearth)
    for i in range(6):
        started = time.monotonic()
        assert ask(client, stream=i % 2 == 1)
        assert time.monotonic() - started < 2
    assert b.chats == 6


def test_never_retried_after_the_first_streamed_byte(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    # Both deployments send two chunks and then drop the connection.
    b_model = chat(upstream="early-close")
    hearth = hearth_with(engine("a", a, chat(upstream="early-close")), engine("b", b, b_model))
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        stream = sdk(hearth).chat.completions.create(model="m", messages=HELLO, stream=True)
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert received and "ended the stream" in str(info.value.message)
    assert a.chats + b.chats == 1  # the client had bytes: nothing was tried again


def test_the_fallback_model_answers_when_every_deployment_fails(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    hearth = hearth_with(
        engine("a", a, chat(upstream="error-503", fallbacks=["backup"])),
        engine("b", b, chat(upstream="error-500"), chat("backup", "ok")),
    )
    client = sdk(hearth)
    reply = client.chat.completions.create(model="m", messages=HELLO)
    assert reply.model == "backup" and reply.choices[0].message.content
    assert ask(client, stream=True)
    assert metric(hearth, 'hearth_gateway_fallbacks_total{fallback="backup",model="m"}') == 2
    sent = [r.json["model"] for r in b.requests if r.path == "/v1/chat/completions"]
    assert "ok" in sent and "error-500" in sent


def test_a_model_whose_deployments_are_all_ejected_goes_straight_to_its_fallback(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    hearth = hearth_with(
        engine("a", a, chat(upstream="error-503", fallbacks=["backup"])),
        engine("b", b, chat(upstream="error-500"), chat("backup", "ok")),
        circuit_breaker_failures=1,
        gateway_retries=1,
    )
    client = sdk(hearth)
    assert ask(client)  # a fails, b fails: both ejected; the fallback answers
    assert (a.chats, b.chats) == (1, 2)
    assert ask(client, stream=True)
    assert (a.chats, b.chats) == (1, 3)  # only the fallback was asked
    assert metric(hearth, 'hearth_gateway_fallbacks_total{fallback="backup",model="m"}') == 2


def test_without_fallbacks_the_last_failure_is_reported(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    hearth = hearth_with(
        engine("a", a, chat(upstream="error-503")),
        engine("b", b, chat(upstream="error-503")),
        gateway_retries=3,
    )
    with pytest.raises(openai.APIStatusError) as info:
        sdk(hearth).chat.completions.create(model="m", messages=HELLO)
    assert info.value.status_code == 503
    assert a.chats + b.chats == 4  # the first attempt and three retries
    assert a.chats >= 1 and b.chats >= 1  # each deployment before either again


def test_an_upstream_404_is_neither_retried_nor_held_against_the_deployment(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    # Both deployments answer 404 "model does not exist": the client's model is unknown
    # there, which says nothing about the engines' health and would fail the same anywhere.
    hearth = hearth_with(
        engine("a", a, chat(upstream="error-404")),
        engine("b", b, chat(upstream="error-404")),
        circuit_breaker_failures=1,
    )
    client = sdk(hearth)
    for i in range(4):
        with pytest.raises(openai.NotFoundError) as info:
            if i % 2:
                list(client.chat.completions.create(model="m", messages=HELLO, stream=True))
            else:
                client.chat.completions.create(model="m", messages=HELLO)
        assert info.value.body["code"] == "model_not_found"
        # The public name, not the engine's own (`error-404`).
        assert "'m'" in info.value.body["message"] and "error-404" not in str(info.value.body)
    assert a.chats + b.chats == 4  # one attempt per request
    assert metric(hearth, "hearth_gateway_retries_total") == 0
    for name in ("a", "b"):
        assert metric(hearth, f'hearth_deployment_healthy{{deployment="{name}",model="m"}}') == 1


def test_circuit_breaker_ejects_and_readmits_after_the_cooldown(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    a.fail_status = 502
    hearth = hearth_with(
        engine("a", a, chat()),
        engine("b", b, chat()),
        circuit_breaker_failures=2,
        circuit_breaker_cooldown=1.0,
    )
    client = sdk(hearth)
    healthy = 'hearth_deployment_healthy{deployment="a",model="m"}'
    for _ in range(40):
        assert ask(client)  # failed over to b each time a is tried
        if a.chats == 2:
            break
    assert a.chats == 2 and metric(hearth, healthy) == 0
    for _ in range(10):
        ask(client)
    assert a.chats == 2  # ejected: not even tried
    a.fail_status = None
    time.sleep(1.1)
    for _ in range(40):
        ask(client)
        if a.chats > 3:
            break
    assert a.chats > 3 and metric(hearth, healthy) == 1  # the trial passed: back in


def test_a_failed_probe_ejects_before_any_request_fails(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    hearth = hearth_with(
        engine("a", a, chat()),
        engine("b", b, chat()),
        health_check_interval=0.1,
        circuit_breaker_cooldown=0.5,
    )
    healthy = 'hearth_deployment_healthy{deployment="a",model="m"}'
    a.kill()
    time.sleep(0.5)
    assert metric(hearth, healthy) == 0
    client = sdk(hearth)
    for _ in range(10):
        assert ask(client)
    assert b.chats == 10
    assert metric(hearth, 'hearth_gateway_retries_total{deployment="b",model="m"}') == 0
    a.revive()
    deadline = time.monotonic() + 5
    while metric(hearth, healthy) != 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for _ in range(20):
        ask(client)
    assert a.chats > 0


def test_session_header_pins_a_conversation_to_one_deployment(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    hearth = hearth_with(
        engine("a", a, chat()), engine("b", b, chat()), session_affinity_header="x-session-id"
    )
    for session in range(12):
        client = sdk(hearth, **{"x-session-id": f"conversation-{session}"})
        for turn in range(4):
            ask(client, text=f"s{session}", stream=turn % 2 == 1)

    def sessions(fake: FakeOpenAIUpstream) -> list[str]:
        return [
            r.json["messages"][0]["content"]
            for r in fake.requests
            if r.path == "/v1/chat/completions"
        ]

    on_a, on_b = sessions(a), sessions(b)
    assert not set(on_a) & set(on_b)  # no conversation was split
    assert on_a and on_b  # but conversations were spread
    assert all(on_a.count(s) == 4 for s in on_a)


def test_ollama_with_the_model_loaded_is_preferred(
    hearth_with: Callable[..., Running],
) -> None:
    with FakeOllama() as cold, FakeOllama() as warm:
        cold.loaded, warm.loaded = [], ["llama3.2:latest"]
        hearth = hearth_with(
            *(
                OllamaEngineConfig(
                    name=name, base_url=fake.base_url, models=[chat(upstream="llama3.2")]
                )
                for name, fake in (("cold", cold), ("warm", warm))
            ),
            health_check_interval=0.1,
        )
        time.sleep(0.5)
        client = sdk(hearth)
        for i in range(10):
            assert ask(client, stream=i % 2 == 1)
        chats = [sum(r.path == "/api/chat" for r in f.requests) for f in (cold, warm)]
        assert chats == [0, 10]


def test_replicas_see_each_others_requests_through_redis(
    hearth_with: Callable[..., Running], a: FakeOpenAIUpstream, b: FakeOpenAIUpstream
) -> None:
    # Engine names of their own: other test runs may share this Redis.
    names = [f"{x}-{uuid.uuid4().hex[:8]}" for x in "ab"]
    engines = [engine(name, fake, chat()) for name, fake in zip(names, (a, b), strict=True)]
    one = hearth_with(*engines, redis_url="redis://127.0.0.1:6379/0")
    two = hearth_with(*engines, redis_url="redis://127.0.0.1:6379/0")
    a.chunk_delay = b.chunk_delay = 1.0  # the stream below lasts about five seconds
    stream = sdk(one).chat.completions.create(model="m", messages=HELLO, stream=True)
    next(iter(stream))
    busy = a if a.chats else b
    time.sleep(1.5)  # both replicas have synced their counts since
    client = sdk(two)
    for _ in range(10):
        ask(client)
    assert busy.chats == 1  # `two` sent nothing where `one` has a request in flight
    stream.close()
