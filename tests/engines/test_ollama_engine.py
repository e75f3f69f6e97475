"""The Ollama adapter against a real HTTP server speaking Ollama's native API.

The fake's own fidelity is checked first, with the official `ollama` SDK, whose pydantic
models would refuse replies that real clients could not read.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import ollama
import orjson
import pytest
from pydantic import ValidationError

from hearth.config import ModelConfig, OllamaEngineConfig
from hearth.engines.ollama import OllamaEngine
from hearth.engines.protocol import ChatCompletionChunk
from hearth.errors import (
    EngineTimeout,
    EngineUnavailable,
    HearthError,
    InvalidRequest,
    ModelNotFound,
    UpstreamError,
)
from tests._server import free_port
from tests.fakes._harness import (
    EngineHarness,
    chat_request,
    collect,
    dying_server,
    either,
    upstream_fixtures,
)
from tests.fakes.ollama_upstream import FakeOllama

shared_upstream, upstream = upstream_fixtures(FakeOllama)
_harness = EngineHarness(OllamaEngine, OllamaEngineConfig)
config, started, run_with = _harness.config, _harness.started, _harness.run_with
fails_with, fails_mid_stream = _harness.fails_with, _harness.fails_mid_stream


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --- the fake speaks Ollama's wire format (checked with the official SDK) -------------------


def test_sdk_chat(upstream: FakeOllama) -> None:
    with ollama.Client(host=upstream.base_url) as client:
        reply = client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])

    assert reply.message.role == "assistant"
    assert reply.message.content == "Hello from the fake."
    assert reply.done and reply.done_reason == "stop"
    assert (reply.prompt_eval_count, reply.eval_count) == (7, 5)


def test_sdk_chat_stream(upstream: FakeOllama) -> None:
    with ollama.Client(host=upstream.base_url) as client:
        parts = list(
            client.chat(
                model="llama3.2",
                messages=[{"role": "user", "content": "Hi"}],
                stream=True,
                options={"num_predict": 3},
                keep_alive="5m",
            )
        )

    assert "".join(part.message.content or "" for part in parts) == "tok0 tok1 tok2 "
    assert [part.done for part in parts] == [False, False, False, True]
    assert parts[-1].eval_count == 3
    # The SDK sends what our adapter sends: options and keep_alive at the top level.
    sent = upstream.last("/api/chat").json
    assert sent["options"] == {"num_predict": 3}
    assert sent["keep_alive"] == "5m"


def test_sdk_chat_stream_error_line(upstream: FakeOllama) -> None:
    with ollama.Client(host=upstream.base_url) as client, pytest.raises(ollama.ResponseError):
        list(
            client.chat(
                model="mid-error", messages=[{"role": "user", "content": "Hi"}], stream=True
            )
        )


def test_sdk_embed(upstream: FakeOllama) -> None:
    with ollama.Client(host=upstream.base_url) as client:
        reply = client.embed(model="nomic-embed-text", input=["one", "two words"])

    assert [list(vector) for vector in reply.embeddings] == [[3.0, 0.0, 0.5], [9.0, 1.0, 0.5]]
    assert reply.prompt_eval_count == 3


def test_sdk_list_and_ps(upstream: FakeOllama) -> None:
    with ollama.Client(host=upstream.base_url) as client:
        listed = client.list()
        loaded = client.ps()

    assert [model.model for model in listed.models] == upstream.model_names
    assert listed.models[0].modified_at is not None
    assert listed.models[0].details is not None and listed.models[0].details.family == "llama"
    assert [model.model for model in loaded.models] == upstream.loaded
    assert loaded.models[0].expires_at is not None


@pytest.mark.parametrize(
    ("model", "status", "text"),
    [("busy", 503, "server busy"), ("missing", 404, "not found"), ("error-400", 400, "Go")],
)
def test_sdk_reads_the_fakes_errors(
    upstream: FakeOllama, model: str, status: int, text: str
) -> None:
    with (
        ollama.Client(host=upstream.base_url) as client,
        pytest.raises(ollama.ResponseError) as info,
    ):
        client.chat(model=model, messages=[{"role": "user", "content": "Hi"}])

    assert info.value.status_code == status
    assert text in info.value.error  # the SDK unwraps Ollama's {"error": "..."}


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://ollama:11434/v1", "http://ollama:11434/v1/", "ollama:11434"]
)
def test_config_refuses_urls_this_adapter_cannot_use(url: str) -> None:
    with pytest.raises(ValidationError, match="base_url"):
        OllamaEngineConfig(name="o", base_url=url)


@pytest.mark.parametrize("value", ["5m", "1h30m", "-1m", "0", "2.5s", " 10m "])
def test_config_accepts_go_durations(value: str) -> None:
    cfg = OllamaEngineConfig(name="o", base_url="http://ollama:11434", keep_alive=value)
    assert cfg.keep_alive == value.strip()


@pytest.mark.parametrize("value", ["300", "5 minutes", "", "m"])
def test_config_refuses_what_ollama_cannot_parse(value: str) -> None:
    with pytest.raises(ValidationError, match="keep_alive"):
        OllamaEngineConfig(name="o", base_url="http://ollama:11434", keep_alive=value)


# --- answers ------------------------------------------------------------------------------


def test_chat_translates_the_request_and_the_reply(upstream: FakeOllama) -> None:
    request = chat_request(
        "llama3.2",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
            },
            {"role": "assistant", "content": None},
        ],
        temperature=0.5,
        top_p=0.9,
        seed=42,
        max_tokens=64,
        stop="END",
        presence_penalty=0.1,
        frequency_penalty=-0.2,
        user="someone",
        stream_options={"include_usage": True},
    )
    reply = run_with(config(upstream.base_url), lambda engine: engine.chat(request))

    assert reply.model == "llama3.2"
    assert reply.choices[0].message.content == "Hello from the fake."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 5)
    assert reply.usage.total_tokens == 12
    assert upstream.last("/api/chat").json == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Be brief."},  # Ollama has no "developer" role
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": ""},
        ],
        "stream": False,
        "options": {
            "temperature": 0.5,
            "top_p": 0.9,
            "seed": 42,
            "num_predict": 64,
            "stop": ["END"],
            "presence_penalty": 0.1,
            "frequency_penalty": -0.2,
        },
    }


def test_unset_options_are_not_sent(upstream: FakeOllama) -> None:
    run_with(config(upstream.base_url), lambda engine: engine.chat(chat_request("llama3.2")))

    sent = upstream.last("/api/chat").json
    assert "options" not in sent  # the model's Modelfile defaults apply
    assert "keep_alive" not in sent  # Ollama's own default applies


def test_max_completion_tokens_becomes_num_predict(upstream: FakeOllama) -> None:
    request = chat_request("llama3.2", max_tokens=10, max_completion_tokens=20)
    run_with(config(upstream.base_url), lambda engine: engine.chat(request))

    assert upstream.last("/api/chat").json["options"] == {"num_predict": 20}


def test_keep_alive_is_sent_on_every_request(upstream: FakeOllama) -> None:
    async def body(engine: OllamaEngine) -> None:
        await engine.chat(chat_request("llama3.2"))
        await collect(engine, chat_request("llama3.2", stream=True))
        await engine.embed("nomic-embed-text", ["x"])

    run_with(config(upstream.base_url, keep_alive="24h"), body)

    posts = [r for r in upstream.requests if r.method == "POST"]
    assert [(r.path, r.json["keep_alive"]) for r in posts] == [
        ("/api/chat", "24h"),
        ("/api/chat", "24h"),
        ("/api/embed", "24h"),
    ]


def test_length_is_reported_as_finish_reason(upstream: FakeOllama) -> None:
    async def body(engine: OllamaEngine) -> tuple[str | None, str | None]:
        reply = await engine.chat(chat_request("length"))
        chunks = await collect(engine, chat_request("length"))
        return reply.choices[0].finish_reason, chunks[-1].choices[0].finish_reason

    assert run_with(config(upstream.base_url), body) == ("length", "length")


def test_thinking_becomes_reasoning_content(upstream: FakeOllama) -> None:
    async def body(engine: OllamaEngine) -> tuple[Any, list[ChatCompletionChunk]]:
        return await engine.chat(chat_request("thinker")), await collect(
            engine, chat_request("thinker")
        )

    reply, chunks = run_with(config(upstream.base_url), body)

    assert reply.choices[0].message.model_extra == {"reasoning_content": "Let me think."}
    assert chunks[1].choices[0].delta.content is None
    assert chunks[1].choices[0].delta.model_extra == {"reasoning_content": "Let me think."}
    assert text_of(chunks) == "tok0 tok1 tok2 "


def test_images_go_to_ollama_as_base64_and_links_are_refused(upstream: FakeOllama) -> None:
    picture = b"\x89PNG\r\n\x1a\n picture"
    encoded = base64.b64encode(picture).decode()
    parts = [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
    ]
    request = chat_request("llama3.2", messages=[{"role": "user", "content": parts}])

    run_with(config(upstream.base_url), lambda engine: engine.chat(request))

    sent = upstream.last("/api/chat").json["messages"]
    assert sent == [{"role": "user", "content": "What is it?", "images": [encoded]}]
    assert upstream.images == [picture]

    link = {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}}
    linked = chat_request("llama3.2", messages=[{"role": "user", "content": [link]}])
    upstream.reset()
    error = fails_with(config(upstream.base_url), lambda engine: engine.chat(linked))
    assert isinstance(error, InvalidRequest) and error.param == "messages[0].content[0]"
    assert upstream.requests == []


def test_which_models_read_images_comes_from_api_show_at_the_probes(
    upstream: FakeOllama,
) -> None:
    models = [ModelConfig(name="eyes", upstream="llava-vision:7b"), ModelConfig(name="chat")]
    names = ("llava-vision:7b", "chat", "other")

    async def body(engine: OllamaEngine) -> tuple[list[bool | None], list[bool | None]]:
        before = [engine.takes_images(n) for n in names]
        assert await engine.health()
        await engine.health()  # known now: not asked again
        return before, [engine.takes_images(n) for n in names]

    before, after = run_with(config(upstream.base_url, models=models), body)

    assert before == [None, None, None]  # nothing asked at start, nor on a request's path
    assert after == [True, False, None]
    shown = [r.json["model"] for r in upstream.requests if r.path == "/api/show"]
    assert shown == ["llava-vision:7b", "chat"]


def test_stream_yields_each_chunk_as_it_arrives(upstream: FakeOllama) -> None:
    upstream.chunk_count, upstream.chunk_delay = 5, 0.05

    async def body(engine: OllamaEngine) -> list[tuple[float, ChatCompletionChunk]]:
        return [
            (time.monotonic(), chunk)
            async for chunk in engine.chat_stream(chat_request("llama3.2", stream=True))
        ]

    received = run_with(config(upstream.base_url), body)

    chunks = [chunk for _, chunk in received]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text_of(chunks) == "tok0 tok1 tok2 tok3 tok4 "
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)  # not asked for
    sent = upstream.last("/api/chat").json
    assert sent["stream"] is True
    assert "stream_options" not in sent
    # 6 lines 50 ms apart: the first token must reach us long before the last is sent,
    # and each chunk (after the role chunk) as soon as its line is written.
    assert len(upstream.sent_at) == 6
    assert received[1][0] < upstream.sent_at[-1] - 0.2
    for (arrived, _), sent_at in zip(received[1:], upstream.sent_at, strict=True):
        assert arrived - sent_at < 0.04


def test_stream_usage_chunk_when_asked(upstream: FakeOllama) -> None:
    request = chat_request("llama3.2", stream=True, stream_options={"include_usage": True})
    chunks = run_with(config(upstream.base_url), lambda engine: collect(engine, request))

    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 3)
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_closing_the_stream_closes_the_upstream_connection(upstream: FakeOllama) -> None:
    upstream.chunk_count, upstream.chunk_delay = 100, 0.05  # five seconds if left running

    async def body(engine: OllamaEngine) -> float:
        stream = engine.chat_stream(chat_request("llama3.2", stream=True))
        await anext(stream)  # role
        await anext(stream)  # first token
        closed_at = time.monotonic()
        await stream.aclose()
        assert await asyncio.to_thread(upstream.disconnected.wait, 2.0)
        return closed_at

    closed_at = run_with(config(upstream.base_url), body)

    assert upstream.sent_at[-1] - closed_at < 0.2
    assert len(upstream.sent_at) < 5


def test_embed_returns_vectors_and_token_count(upstream: FakeOllama) -> None:
    texts = ["one", "two words", "three words here"]
    result = run_with(config(upstream.base_url), lambda e: e.embed("nomic-embed-text", texts))

    assert result.vectors == [[3.0, 0.0, 0.5], [9.0, 1.0, 0.5], [16.0, 2.0, 0.5]]
    assert result.prompt_tokens == 6
    assert upstream.last("/api/embed").json == {"model": "nomic-embed-text", "input": texts}


def test_embed_of_nothing_does_not_call_ollama(upstream: FakeOllama) -> None:
    result = run_with(
        config(upstream.base_url), lambda engine: engine.embed("nomic-embed-text", [])
    )

    assert (result.vectors, result.prompt_tokens) == ([], 0)
    assert upstream.requests == []


# --- models, loaded models and health --------------------------------------------------------


def test_models_are_discovered_when_none_are_configured(upstream: FakeOllama) -> None:
    async def body(engine: OllamaEngine) -> list[ModelConfig]:
        return engine.models()

    models = run_with(config(upstream.base_url, models=[]), body)

    assert [(m.name, m.upstream_name, m.type) for m in models] == [
        ("llama3.2:latest", "llama3.2:latest", "chat"),
        ("nomic-embed-text:latest", "nomic-embed-text:latest", "chat"),
    ]


def test_configured_models_are_not_replaced(upstream: FakeOllama) -> None:
    async def body(engine: OllamaEngine) -> tuple[list[str], list[str]]:
        return [model.name for model in engine.models()], await engine.list_models()

    names, listed = run_with(config(upstream.base_url), body)

    assert names == ["chat"]
    assert listed == ["llama3.2:latest", "nomic-embed-text:latest"]


def test_discovery_failure_does_not_stop_start_and_health_fills_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    cfg = config(f"http://127.0.0.1:{port}", models=[])

    async def main() -> tuple[list[ModelConfig], bool, list[ModelConfig]]:
        async with started(cfg) as engine:
            before = engine.models()
            with FakeOllama(port=port):
                healthy = await engine.health()
                return before, healthy, engine.models()

    before, healthy, after = asyncio.run(main())

    assert before == []
    assert "model discovery failed" in caplog.text
    assert healthy
    assert [model.name for model in after] == ["llama3.2:latest", "nomic-embed-text:latest"]


def test_loaded_models_come_from_api_ps(upstream: FakeOllama) -> None:
    upstream.loaded = ["llama3.2:latest", "qwen3:0.6b"]
    try:
        loaded = run_with(config(upstream.base_url), lambda engine: engine.loaded_models())
    finally:
        upstream.loaded = ["llama3.2:latest"]

    assert loaded == ["llama3.2:latest", "qwen3:0.6b"]
    assert upstream.last("/api/ps").method == "GET"


def test_health(upstream: FakeOllama) -> None:
    assert run_with(config(upstream.base_url), lambda engine: engine.health())
    assert upstream.last("/api/tags").method == "GET"
    down = config(f"http://127.0.0.1:{free_port()}")
    assert not run_with(down, lambda engine: engine.health())


def test_health_answers_within_the_connect_timeout(upstream: FakeOllama) -> None:
    upstream.tags_delay = 2.0
    cfg = config(upstream.base_url, connect_timeout=0.2, read_timeout=10.0)

    async def body(engine: OllamaEngine) -> tuple[bool, float]:
        began = time.monotonic()
        return await engine.health(), time.monotonic() - began

    healthy, took = run_with(cfg, body)

    assert not healthy
    assert took < 1.0


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_connection_refused_is_unavailable(streaming: bool) -> None:
    cfg = config(f"http://127.0.0.1:{free_port()}")
    error = fails_with(cfg, either(streaming, chat_request("llama3.2")))
    assert isinstance(error, EngineUnavailable)
    assert "unreachable" in error.message


def test_read_timeout(upstream: FakeOllama) -> None:
    cfg = config(upstream.base_url, read_timeout=0.2)
    error = fails_with(cfg, lambda engine: engine.chat(chat_request("slow")))
    assert isinstance(error, EngineTimeout)
    # The fake sees us hang up rather than keep the request open.
    assert upstream.disconnected.wait(2.0)


def test_read_timeout_between_stream_lines(upstream: FakeOllama) -> None:
    cfg = config(upstream.base_url, read_timeout=0.2)
    error, received = fails_mid_stream(cfg, chat_request("slow"))
    assert isinstance(error, EngineTimeout)
    assert text_of(received) == "tok0 "


@pytest.mark.parametrize(
    ("model", "expected", "text"),
    [
        ("busy", EngineUnavailable, "busy (503): server busy"),
        ("error-429", EngineUnavailable, "busy (429)"),
        ("error-502", EngineUnavailable, "502"),
        ("missing", ModelNotFound, "'missing'"),
        ("error-400", InvalidRequest, "cannot unmarshal string"),
        ("error-500", UpstreamError, "500: llama runner process has terminated"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_upstream_errors_are_mapped(
    upstream: FakeOllama, model: str, expected: type[HearthError], text: str, streaming: bool
) -> None:
    error = fails_with(config(upstream.base_url), either(streaming, chat_request(model)))
    assert type(error) is expected
    assert text in error.message


@pytest.mark.parametrize(
    ("model", "expected"),
    [("busy", EngineUnavailable), ("missing", ModelNotFound), ("error-400", InvalidRequest)],
)
def test_embed_errors_are_mapped(
    upstream: FakeOllama, model: str, expected: type[HearthError]
) -> None:
    error = fails_with(config(upstream.base_url), lambda engine: engine.embed(model, ["x"]))
    assert type(error) is expected


def test_malformed_json_answer_is_upstream_error(upstream: FakeOllama) -> None:
    error = fails_with(
        config(upstream.base_url), lambda e: e.chat(chat_request("bad-json", stream=False))
    )
    assert isinstance(error, UpstreamError)
    assert "malformed JSON" in error.message


@pytest.mark.parametrize("streaming", [False, True])
def test_wrong_base_url_is_not_reported_as_a_missing_model(
    upstream: FakeOllama, streaming: bool
) -> None:
    cfg = config(upstream.base_url + "/nope")
    error = fails_with(cfg, either(streaming, chat_request("llama3.2")))
    assert isinstance(error, UpstreamError)
    assert "base_url" in error.message


@pytest.mark.parametrize(
    ("model", "text"),
    [
        ("bad-ndjson", "malformed JSON"),
        ("early-close", "before its final line"),
        ("mid-error", "failed mid-stream: an error was encountered"),
    ],
)
def test_broken_streams_raise_after_the_good_chunks(
    upstream: FakeOllama, model: str, text: str
) -> None:
    error, received = fails_mid_stream(config(upstream.base_url), chat_request(model))
    assert isinstance(error, UpstreamError)
    assert text in error.message
    assert text_of(received).startswith("tok0 ")  # what arrived before the fault was passed on


def test_connection_dropped_mid_stream_is_upstream_error() -> None:
    """A server that dies mid-body leaves a truncated chunked response."""

    part = {"model": "m", "message": {"role": "assistant", "content": "a"}, "done": False}
    received: list[ChatCompletionChunk] = []

    async def main() -> None:
        async with (
            dying_server(b"application/x-ndjson", orjson.dumps(part) + b"\n") as port,
            started(config(f"http://127.0.0.1:{port}")) as engine,
        ):
            async for chunk in engine.chat_stream(chat_request("m")):
                received.append(chunk)

    with pytest.raises(UpstreamError, match="fake"):
        asyncio.run(main())
    assert text_of(received) == "a"
