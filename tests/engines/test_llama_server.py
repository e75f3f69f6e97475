"""The CPU engine on llama.cpp's own llama-server (one supervised child per model), through
`hearth engine` and the official openai SDK: many streams at once, a cancelled stream
freeing its slot, the child dying and coming back, the bounded queue, and the same answer
at temperature 0 as the in-process engine."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hearth.config import (
    DEFAULT_CHAT_MODEL,
    LlamaCppEngineConfig,
    LlamaCppModelConfig,
    Settings,
)
from hearth.engine_server.app import create_engine_app
from hearth.engines._llama_server_process import child_environment, find_binary
from hearth.engines.base import build_engine
from hearth.engines.llama_server import LlamaServerEngine
from hearth.engines.llamacpp import LlamaCppEngine
from hearth.engines.protocol import ChatCompletionRequest, ChatMessage
from tests._server import Running, running

if find_binary(None) is None and os.environ.get("CI") != "true":
    pytest.skip(
        "no llama-server beside Python or on PATH: `make dev` builds it",
        allow_module_level=True,
    )

TOKEN = "llama-server-test-token"
LONG = [{"role": "user", "content": "Repeat the word 'hello' 500 times."}]


def _app(tmp_path: Path, *, parallel: int, max_waiting: int) -> Settings:
    model = LlamaCppModelConfig(name=DEFAULT_CHAT_MODEL, parallel=parallel)
    return Settings(
        data_dir=tmp_path,
        engine_api_key=TOKEN,
        engine_max_waiting=max_waiting,
        engines=[LlamaCppEngineConfig(backend="llama-server", models=[model])],
    )


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Eight slots, as by default."""
    settings = _app(tmp_path_factory.mktemp("wide"), parallel=8, max_waiting=8)
    with running(create_engine_app(settings)) as server:
        yield server


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One slot and room for one more request to wait."""
    settings = _app(tmp_path_factory.mktemp("narrow"), parallel=1, max_waiting=1)
    with running(create_engine_app(settings)) as server:
        yield server


def _client(server: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=120)


def _engine(server: Running) -> LlamaServerEngine:
    [engine] = server.app.state.engines
    assert isinstance(engine, LlamaServerEngine)
    return engine


def _upstream_metrics(server: Running) -> dict[str, float]:
    """llama-server's own /metrics, read over its Unix socket."""
    child = _engine(server)._children[DEFAULT_CHAT_MODEL]
    transport = httpx.HTTPTransport(uds=str(child.process.options.socket))
    with httpx.Client(transport=transport, base_url="http://llama-server") as http:
        text = http.get("/metrics").text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def _eventually(check, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    assert check()


def test_the_kind_is_llama_server_when_installed() -> None:
    engine = build_engine(LlamaCppEngineConfig())
    assert isinstance(engine, LlamaServerEngine)
    assert isinstance(build_engine(LlamaCppEngineConfig(backend="in-process")), LlamaCppEngine)


def test_the_child_gets_no_llama_arg_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_ARG_N_PARALLEL", "64")
    monkeypatch.setenv("HEARTH_KEEP", "1")
    env = child_environment()
    assert "LLAMA_ARG_N_PARALLEL" not in env and env["HEARTH_KEEP"] == "1"


def test_eight_streams_generate_together_with_correct_usage(wide: Running) -> None:
    client = _client(wide)
    questions = [f"Write a short poem about the number {n}." for n in range(8)]
    results: dict[int, dict] = {}
    first_tokens: list[float] = []
    lock = threading.Lock()

    def chat(n: int) -> None:
        stream = client.chat.completions.create(
            model=DEFAULT_CHAT_MODEL,
            messages=[{"role": "user", "content": questions[n]}],
            max_tokens=48,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, pieces, finish, usage = "", 0, None, None
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                if choice.delta.content:
                    if not pieces:
                        with lock:
                            first_tokens.append(time.monotonic())
                    pieces += 1
                    text += choice.delta.content
                finish = choice.finish_reason or finish
        results[n] = {"text": text, "pieces": pieces, "finish": finish, "usage": usage,
                      "ended": time.monotonic()}  # fmt: skip

    threads = [threading.Thread(target=chat, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(results) == list(range(8))
    for result in results.values():
        words = result["text"].split()
        assert len(words) >= 5 and sum(w.isascii() for w in words) >= len(words) * 0.8
        usage = result["usage"]
        assert usage is not None and result["finish"] == "length"
        assert usage.completion_tokens == 48
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        # One event per token (llama-server holds back only a token's incomplete UTF-8).
        assert 0.8 * 48 <= result["pieces"] <= 48
    # Same question template, prompts of about the same length.
    assert len({r["usage"].prompt_tokens for r in results.values()}) <= 3
    # Together, not one after another: every stream had its first token before any ended.
    assert len(first_tokens) == 8
    assert max(first_tokens) < min(r["ended"] for r in results.values())


def test_temperature_zero_answers_as_the_in_process_engine(wide: Running) -> None:
    question = [{"role": "user", "content": "What is the capital of France?"}]
    served = _client(wide).chat.completions.create(
        model=DEFAULT_CHAT_MODEL, messages=question, max_tokens=40, temperature=0
    )
    engine = LlamaCppEngine(LlamaCppEngineConfig(models=[LlamaCppModelConfig(name="m")]))

    async def in_process() -> object:
        await engine.start()
        try:
            request = ChatCompletionRequest(
                model="m",
                messages=[ChatMessage(role="user", content=question[0]["content"])],
                max_tokens=40,
                temperature=0,
            )
            return await engine.chat(request)
        finally:
            await engine.close()

    reference = asyncio.run(in_process())
    assert served.choices[0].message.content == reference.choices[0].message.content  # type: ignore[attr-defined]
    assert served.choices[0].finish_reason == reference.choices[0].finish_reason  # type: ignore[attr-defined]
    ours, theirs = served.usage, reference.usage  # type: ignore[attr-defined]
    assert ours is not None
    assert (ours.prompt_tokens, ours.completion_tokens) == (
        theirs.prompt_tokens,
        theirs.completion_tokens,
    )


def test_metrics_report_slots_speed_and_prompt_cache(wide: Running) -> None:
    client = _client(wide)
    system = {"role": "system", "content": "You are a helpful assistant who answers briefly. " * 8}
    for question in ("Name a fruit.", "Name a fruit."):
        client.chat.completions.create(
            model=DEFAULT_CHAT_MODEL,
            messages=[system, {"role": "user", "content": question}],
            max_tokens=8,
        )
    text = httpx.get(f"{wide.url}/metrics").text
    samples = {
        s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
        if s.labels.get("model") == DEFAULT_CHAT_MODEL
    }  # fmt: skip
    assert samples["hearth_engine_slots"] == 8
    assert samples["hearth_engine_requests_running"] == 0
    assert samples["hearth_engine_generation_tokens_per_second"] > 0
    # The second request's prompt came from the cache, all but its last token or so.
    assert samples["hearth_engine_prompt_cache_hit_tokens_total"] > 50


def test_a_cancelled_stream_frees_its_slot_at_once(narrow: Running) -> None:
    client = _client(narrow)
    before = _upstream_metrics(narrow)["llamacpp:n_decode_total"]
    stream = client.chat.completions.create(
        model=DEFAULT_CHAT_MODEL, messages=LONG, max_tokens=1500, temperature=0, stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()  # the client leaves after its first token
    # The next request has the only slot: it answers, and by then llama-server has
    # decoded far fewer than the 1,500 tokens the cancelled one asked for.
    answer = client.chat.completions.create(
        model=DEFAULT_CHAT_MODEL,
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=8,
        temperature=0,
    )
    assert answer.choices[0].message.content
    decoded = _upstream_metrics(narrow)["llamacpp:n_decode_total"] - before
    assert decoded < 300, f"{decoded} decode steps: the cancelled request kept its slot"


def test_a_full_queue_answers_503_with_retry_after(narrow: Running) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    body = {
        "model": DEFAULT_CHAT_MODEL,
        "messages": LONG,  # at temperature 0, SmolLM2 runs to max_tokens on this one
        "max_tokens": 1500,
        "temperature": 0,
        "stream": True,
    }
    with httpx.Client(base_url=narrow.url, headers=headers, timeout=120) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as running_one:
            lines = running_one.iter_lines()  # held: dropping it would close the stream
            assert next(lines).startswith("data: ")
            waiting = threading.Thread(
                target=lambda: http.post(
                    "/v1/chat/completions", json={**body, "stream": False, "max_tokens": 4}
                )
            )
            waiting.start()  # the one request allowed to wait for the slot
            _eventually(lambda: _engine(narrow).load_of(DEFAULT_CHAT_MODEL).waiting == 1)
            refused = http.post("/v1/chat/completions", json={**body, "stream": False})
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "engine_overloaded"
        waiting.join(timeout=120)
    assert not waiting.is_alive()


def test_the_child_killed_mid_stream_fails_that_stream_and_comes_back(narrow: Running) -> None:
    client = _client(narrow)
    child = _engine(narrow)._children[DEFAULT_CHAT_MODEL].process
    pid, restarts = child.pid, child.restarts
    assert pid is not None
    stream = client.chat.completions.create(
        model=DEFAULT_CHAT_MODEL, messages=LONG, max_tokens=1500, temperature=0, stream=True
    )
    got = 0
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got += 1
                if got == 1:
                    os.kill(pid, signal.SIGKILL)
    assert got >= 1
    # Supervised: a new child, then the next request succeeds.
    _eventually(lambda: child.restarts == restarts + 1 and child.ready)
    assert child.pid != pid
    ready = httpx.get(f"{narrow.url}/readyz").json()
    assert ready["status"] == "ready"
    answer = client.chat.completions.create(
        model=DEFAULT_CHAT_MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4
    )
    assert answer.choices[0].message.content
