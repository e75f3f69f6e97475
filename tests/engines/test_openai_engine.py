"""The OpenAI-compatible adapter against a real HTTP server speaking the protocol."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from hearth.config import ModelConfig, OpenAIEngineConfig
from hearth.engines.openai import OpenAIEngine
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
from tests.fakes.openai_upstream import FakeOpenAIUpstream

API_KEY = "sk-test-not-a-real-key"

shared_upstream, upstream = upstream_fixtures(FakeOpenAIUpstream)
_harness = EngineHarness(OpenAIEngine, OpenAIEngineConfig, secret=API_KEY)
config, started, run_with = _harness.config, _harness.started, _harness.run_with
fails_with, fails_mid_stream = _harness.fails_with, _harness.fails_mid_stream


# --- answers ------------------------------------------------------------------------------


def test_chat_returns_the_completion(upstream: FakeOpenAIUpstream) -> None:
    request = chat_request("ok", temperature=0.5, stream_options={"include_usage": True})
    reply = run_with(config(upstream.base_url), lambda engine: engine.chat(request))

    assert reply.choices[0].message.content == "Hello from the fake."
    assert reply.usage is not None and reply.usage.total_tokens == 12
    sent = upstream.last("/v1/chat/completions")
    assert sent.json["stream"] is False
    assert sent.json["temperature"] == 0.5
    assert "stream_options" not in sent.json  # OpenAI refuses it without stream=true
    assert "max_tokens" not in sent.json  # unset fields are not sent as null


def test_unknown_request_fields_pass_through(upstream: FakeOpenAIUpstream) -> None:
    request = chat_request("ok", response_format={"type": "json_object"})
    run_with(config(upstream.base_url), lambda engine: engine.chat(request))

    assert upstream.last("/v1/chat/completions").json["response_format"] == {"type": "json_object"}


def test_api_key_is_sent_as_bearer_token(upstream: FakeOpenAIUpstream) -> None:
    cfg = config(upstream.base_url, api_key=API_KEY)
    run_with(cfg, lambda engine: engine.chat(chat_request("ok")))

    assert upstream.last("/v1/chat/completions").headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in repr(OpenAIEngine(cfg).config)


def test_no_authorization_header_without_a_key(upstream: FakeOpenAIUpstream) -> None:
    run_with(config(upstream.base_url), lambda engine: engine.chat(chat_request("ok")))

    assert "authorization" not in upstream.last("/v1/chat/completions").headers


def test_stream_yields_each_chunk_as_it_arrives(upstream: FakeOpenAIUpstream) -> None:
    upstream.chunk_count, upstream.chunk_delay = 5, 0.05

    async def body(engine: OpenAIEngine) -> list[tuple[float, ChatCompletionChunk]]:
        return [
            (time.monotonic(), chunk) async for chunk in engine.chat_stream(chat_request("stream"))
        ]

    received = run_with(config(upstream.base_url), body)

    chunks = [chunk for _, chunk in received]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "tok0 tok1 tok2 tok3 tok4 "
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert upstream.last("/v1/chat/completions").json["stream"] is True
    # 7 events 50 ms apart: the first chunk must reach us long before the last is sent.
    assert len(upstream.sent_at) == 7
    assert received[0][0] < upstream.sent_at[-1] - 0.2
    for (arrived, _), sent in zip(received, upstream.sent_at, strict=False):
        assert arrived - sent < 0.04


def test_stream_passes_stream_options_and_returns_usage(upstream: FakeOpenAIUpstream) -> None:
    request = chat_request("stream", stream=True, stream_options={"include_usage": True})
    chunks = run_with(config(upstream.base_url), lambda engine: collect(engine, request))

    assert upstream.last("/v1/chat/completions").json["stream_options"] == {"include_usage": True}
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_closing_the_stream_closes_the_upstream_connection(upstream: FakeOpenAIUpstream) -> None:
    upstream.chunk_count, upstream.chunk_delay = 100, 0.05  # five seconds if left running

    async def body(engine: OpenAIEngine) -> float:
        stream = engine.chat_stream(chat_request("stream"))
        await anext(stream)
        closed_at = time.monotonic()
        await stream.aclose()
        assert await asyncio.to_thread(upstream.disconnected.wait, 2.0)
        return closed_at

    closed_at = run_with(config(upstream.base_url), body)

    assert upstream.sent_at[-1] - closed_at < 0.2
    assert len(upstream.sent_at) < 5


def test_embed_returns_vectors_in_input_order(upstream: FakeOpenAIUpstream) -> None:
    texts = ["one", "two words", "three words here"]
    result = run_with(config(upstream.base_url), lambda engine: engine.embed("emb", texts))

    assert result.vectors == [[3.0, 0.0, 0.5], [9.0, 1.0, 0.5], [16.0, 2.0, 0.5]]
    assert result.prompt_tokens == 6
    sent = upstream.last("/v1/embeddings").json
    assert sent == {"model": "emb", "input": texts, "encoding_format": "float"}


# --- models and health ---------------------------------------------------------------------


def test_models_are_discovered_when_none_are_configured(upstream: FakeOpenAIUpstream) -> None:
    async def body(engine: OpenAIEngine) -> list[str]:
        return [model.name for model in engine.models()]

    names = run_with(config(upstream.base_url, models=[]), body)

    assert names == ["fake-chat", "fake-embed"]


def test_configured_models_are_not_replaced(upstream: FakeOpenAIUpstream) -> None:
    async def body(engine: OpenAIEngine) -> tuple[list[str], list[str]]:
        return [model.name for model in engine.models()], await engine.list_models()

    names, listed = run_with(config(upstream.base_url), body)

    assert names == ["chat"]
    assert listed == ["fake-chat", "fake-embed"]


def test_discovery_failure_does_not_stop_start_and_a_later_list_fills_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    cfg = config(f"http://127.0.0.1:{port}/v1", models=[], api_key=API_KEY)

    async def main() -> tuple[list[ModelConfig], bool, list[ModelConfig]]:
        async with started(cfg) as engine:
            before = engine.models()
            with FakeOpenAIUpstream(port=port):
                healthy = await engine.health()
                return before, healthy, engine.models()

    before, healthy, after = asyncio.run(main())

    assert before == []
    assert "model discovery failed" in caplog.text
    assert API_KEY not in caplog.text
    assert healthy
    assert [model.name for model in after] == ["fake-chat", "fake-embed"]


def test_health(upstream: FakeOpenAIUpstream) -> None:
    assert run_with(config(upstream.base_url), lambda engine: engine.health())
    down = config(f"http://127.0.0.1:{free_port()}/v1")
    assert not run_with(down, lambda engine: engine.health())


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_connection_refused_is_unavailable(streaming: bool) -> None:
    cfg = config(f"http://127.0.0.1:{free_port()}/v1", api_key=API_KEY)
    error = fails_with(cfg, either(streaming, chat_request("ok")))
    assert isinstance(error, EngineUnavailable)


def test_read_timeout(upstream: FakeOpenAIUpstream) -> None:
    cfg = config(upstream.base_url, read_timeout=0.2)
    error = fails_with(cfg, lambda engine: engine.chat(chat_request("slow")))
    assert isinstance(error, EngineTimeout)
    # The fake sees us hang up rather than keep the request open.
    assert upstream.disconnected.wait(2.0)


def test_read_timeout_between_stream_chunks(upstream: FakeOpenAIUpstream) -> None:
    cfg = config(upstream.base_url, read_timeout=0.2)
    error, received = fails_mid_stream(cfg, chat_request("slow"))
    assert isinstance(error, EngineTimeout)
    assert len(received) == 1


@pytest.mark.parametrize(
    ("model", "expected", "text"),
    [
        ("error-500", UpstreamError, "500"),
        ("error-502", EngineUnavailable, "502"),
        ("error-503", EngineUnavailable, "503"),
        ("error-400", InvalidRequest, "temperature must be between 0 and 2"),
        ("error-404", ModelNotFound, "error-404"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_upstream_errors_are_mapped(
    upstream: FakeOpenAIUpstream,
    model: str,
    expected: type[HearthError],
    text: str,
    streaming: bool,
) -> None:
    error = fails_with(
        config(upstream.base_url, api_key=API_KEY), either(streaming, chat_request(model))
    )
    assert type(error) is expected
    assert text in error.message
    if model == "error-400":
        assert error.param == "temperature"


def test_malformed_json_answer_is_upstream_error(upstream: FakeOpenAIUpstream) -> None:
    error = fails_with(
        config(upstream.base_url), lambda engine: engine.chat(chat_request("bad-json"))
    )
    assert isinstance(error, UpstreamError)
    assert "malformed JSON" in error.message


def test_wrong_base_url_is_not_reported_as_a_missing_model(upstream: FakeOpenAIUpstream) -> None:
    cfg = config(upstream.base_url.removesuffix("/v1") + "/nope")
    error = fails_with(cfg, lambda engine: engine.chat(chat_request("ok")))
    assert isinstance(error, UpstreamError)
    assert "base_url" in error.message


@pytest.mark.parametrize(
    ("model", "text"), [("bad-sse", "malformed JSON"), ("early-close", "[DONE]")]
)
def test_broken_streams_raise_after_the_good_chunks(
    upstream: FakeOpenAIUpstream, model: str, text: str
) -> None:
    error, received = fails_mid_stream(config(upstream.base_url), chat_request(model))
    assert isinstance(error, UpstreamError)
    assert text in error.message
    assert received  # what arrived before the fault was passed on


def test_connection_dropped_mid_stream_is_upstream_error() -> None:
    """A server that dies mid-body leaves a truncated chunked response."""

    event = {"id": "x", "created": 1, "model": "m", "choices": [{"delta": {"content": "a"}}]}
    received: list[ChatCompletionChunk] = []

    async def main() -> None:
        async with (
            dying_server(b"text/event-stream", b"data: " + orjson.dumps(event) + b"\n\n") as port,
            started(config(f"http://127.0.0.1:{port}/v1")) as engine,
        ):
            async for chunk in engine.chat_stream(chat_request("m")):
                received.append(chunk)

    with pytest.raises(UpstreamError, match="fake"):
        asyncio.run(main())
    assert [c.choices[0].delta.content for c in received] == ["a"]
