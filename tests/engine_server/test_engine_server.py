"""`hearth engine`, the local engines as their own OpenAI-compatible server: the official
openai SDK against it, its token, its bounded queue, its metrics, and `hearth serve`'s
gateway reaching it as an `openai` engine, with the same answer at temperature 0 as the
in-process engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hearth.config import (
    DEFAULT_CHAT_MODEL,
    DEFAULT_EMBEDDING_MODEL,
    EmbedderEngineConfig,
    LlamaCppEngineConfig,
    LlamaCppModelConfig,
    ModelConfig,
    OpenAIEngineConfig,
    Settings,
)
from hearth.engine_server.app import create_engine_app
from hearth.engines.openai import _metrics_load
from hearth.errors import ConfigError
from hearth.server import create_app
from tests._server import Running, running

TOKEN = "engine-test-token"
GREEDY = {"temperature": 0, "seed": 7, "max_tokens": 12}
QUESTION = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    # One slot, so that one stream fills the model (llama-server has 8 by default).
    chat = LlamaCppEngineConfig(models=[LlamaCppModelConfig(name=DEFAULT_CHAT_MODEL, parallel=1)])
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("engine"),
        engine_api_key=TOKEN,
        engine_max_waiting=0,
        engines=[chat, EmbedderEngineConfig()],
    )
    with running(create_engine_app(settings)) as server:
        yield server


@pytest.fixture(scope="module")
def client(engine: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{engine.url}/v1", api_key=TOKEN, max_retries=0)


def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_models_chat_stream_and_embeddings_through_the_sdk(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL}

    answer = client.chat.completions.create(model=DEFAULT_CHAT_MODEL, messages=QUESTION, **GREEDY)
    assert answer.model == DEFAULT_CHAT_MODEL
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0

    chunks = list(
        client.chat.completions.create(
            model=DEFAULT_CHAT_MODEL,
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
            **GREEDY,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer.choices[0].message.content  # same seed, same greedy answer
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    # Without include_usage no usage chunk goes out, although the engine counts tokens.
    plain = list(
        client.chat.completions.create(
            model=DEFAULT_CHAT_MODEL, messages=QUESTION, stream=True, **GREEDY
        )
    )
    assert all(c.usage is None for c in plain)

    vectors = client.embeddings.create(model=DEFAULT_EMBEDDING_MODEL, input=["a", "b c"])
    assert [len(d.embedding) for d in vectors.data] == [384, 384]  # base64 by default in the SDK


def test_the_token_is_required(engine: Running) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}):
        reply = httpx.get(f"{engine.url}/v1/models", headers=headers)
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "invalid_api_key"
    # Probes and metrics stay open, as on `hearth serve`.
    assert httpx.get(f"{engine.url}/healthz").status_code == 200
    ready = httpx.get(f"{engine.url}/readyz").json()
    assert ready["status"] == "ready" and set(ready["checks"]) == {
        "engine:local",
        "engine:local-embeddings",
    }


def test_what_it_cannot_honour_is_refused_by_name(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=DEFAULT_CHAT_MODEL,
            messages=QUESTION,
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    assert "'tools'" in refused.value.message and refused.value.param == "tools"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=QUESTION)
    with pytest.raises(openai.BadRequestError) as shorter:
        client.embeddings.create(model=DEFAULT_EMBEDDING_MODEL, input="a", dimensions=64)
    assert shorter.value.param == "dimensions"
    with pytest.raises(openai.BadRequestError):  # an embedding model cannot chat
        client.chat.completions.create(model=DEFAULT_EMBEDDING_MODEL, messages=QUESTION)


def test_a_full_queue_answers_503_with_retry_after_and_metrics_show_the_load(
    engine: Running,
) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    body = {
        "model": DEFAULT_CHAT_MODEL,
        "messages": [{"role": "user", "content": "Tell a long story about the sea."}],
        "max_tokens": 400,
        "stream": True,
    }
    before = _metrics(engine.url)
    with httpx.Client(base_url=engine.url, headers=headers, timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as holding:
            lines = holding.iter_lines()
            assert next(lines).startswith("data: ")  # admitted and generating
            during = _metrics(engine.url)
            running_key = ("hearth_engine_requests_running", (("model", DEFAULT_CHAT_MODEL),))
            assert during[running_key] == 1
            # One slot, no room to wait (engine_max_waiting=0): the next is refused at once.
            refused = http.post("/v1/chat/completions", json={**body, "stream": False})
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "engine_overloaded"
            # The gateway's adapter reads the same text as vLLM's gauges.
            load = _metrics_load(httpx.get(f"{engine.url}/metrics").text)
            assert load is not None and load.running == 1
        # Leaving mid-stream frees the slot: the engine stops generating for nobody.
    after = _metrics(engine.url)
    rejected = ("hearth_engine_rejected_requests_total", (("model", DEFAULT_CHAT_MODEL),))
    assert after[rejected] == before.get(rejected, 0) + 1
    left = (
        "hearth_engine_requests_total",
        (("endpoint", "chat"), ("model", DEFAULT_CHAT_MODEL), ("status", "499")),
    )
    _eventually(lambda: _metrics(engine.url).get(left, 0) == before.get(left, 0) + 1)
    ok = httpx.post(
        f"{engine.url}/v1/chat/completions",
        headers=headers,
        json={**body, "stream": False, "max_tokens": 4},
        timeout=60,
    )
    assert ok.status_code == 200


def test_a_non_streaming_request_whose_client_left_stops(engine: Running) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    body = {
        "model": DEFAULT_CHAT_MODEL,
        # At temperature 0 SmolLM2 runs to max_tokens on this one (1,500 tokens, ~30 s).
        "messages": [{"role": "user", "content": "Repeat the word 'hello' 500 times."}],
        "max_tokens": 1500,
        "temperature": 0,
    }
    left = (
        "hearth_engine_requests_total",
        (("endpoint", "chat"), ("model", DEFAULT_CHAT_MODEL), ("status", "499")),
    )
    before = _metrics(engine.url).get(left, 0)
    with pytest.raises(httpx.ReadTimeout):  # the client gives up; its connection closes
        httpx.post(f"{engine.url}/v1/chat/completions", headers=headers, json=body, timeout=1.0)
    # The generation is cancelled (counted as 499), not left to run for nobody.
    _eventually(lambda: _metrics(engine.url).get(left, 0) == before + 1)
    running = ("hearth_engine_requests_running", (("model", DEFAULT_CHAT_MODEL),))
    _eventually(lambda: _metrics(engine.url)[running] == 0)


def _eventually(check, attempts: int = 200) -> None:  # type: ignore[no-untyped-def]
    done = threading.Event()
    for _ in range(attempts):
        if check():
            return
        done.wait(0.05)
    assert check()


def test_the_gateway_serves_through_it_with_the_in_process_answer(
    engine: Running, postgres, tmp_path: Path, hearth: Running
) -> None:
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path,
        engines=[
            OpenAIEngineConfig(
                name="cpu",
                base_url=f"{engine.url}/v1",
                api_key=TOKEN,
                models=[
                    ModelConfig(name=DEFAULT_CHAT_MODEL),
                    ModelConfig(name=DEFAULT_EMBEDDING_MODEL, type="embedding"),
                ],
            )
        ],
    )
    with running(create_app(settings)) as web:
        remote = openai.OpenAI(base_url=f"{web.url}/v1", api_key="unused", max_retries=0)
        local = openai.OpenAI(base_url=f"{hearth.url}/v1", api_key="unused", max_retries=0)
        through = remote.chat.completions.create(
            model=DEFAULT_CHAT_MODEL, messages=QUESTION, **GREEDY
        )
        direct = local.chat.completions.create(
            model=DEFAULT_CHAT_MODEL, messages=QUESTION, **GREEDY
        )
        assert through.choices[0].message.content == direct.choices[0].message.content
        streamed = remote.chat.completions.create(
            model=DEFAULT_CHAT_MODEL, messages=QUESTION, stream=True, **GREEDY
        )
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert text == direct.choices[0].message.content
        far = remote.embeddings.create(model=DEFAULT_EMBEDDING_MODEL, input="hello")
        near = local.embeddings.create(model=DEFAULT_EMBEDDING_MODEL, input="hello")
        assert far.data[0].embedding == near.data[0].embedding
        assert httpx.get(f"{web.url}/readyz?only=database").json()["checks"] == {"database": "ok"}


def test_it_refuses_to_listen_openly_or_to_proxy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HEARTH_ENGINE_API_KEY"):
        create_engine_app(Settings(data_dir=tmp_path, host="0.0.0.0"))
    remote = OpenAIEngineConfig(name="gpu", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match="local engines only"):
        create_engine_app(Settings(data_dir=tmp_path, engines=[remote]))
