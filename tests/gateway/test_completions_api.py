"""/v1/completions (OpenAI's legacy text completions) with the official SDK: on the shipped
model (llama-server's own /v1/completions: the prompt as it is, no chat template), through an
OpenAI-compatible upstream, and refused by name where it cannot be honoured."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from hearth.config import (
    DEFAULT_CHAT_MODEL,
    ModelConfig,
    OllamaEngineConfig,
    OpenAIEngineConfig,
    Settings,
)
from hearth.server import create_app
from tests._accounts import admin_headers
from tests._server import Running, free_port, running
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.fakes.timed_engine import TimedEngine


@pytest.fixture
def client(hearth: Running) -> openai.OpenAI:
    key = admin_headers(hearth)["authorization"].removeprefix("Bearer ")
    return openai.OpenAI(base_url=f"{hearth.url}/v1", api_key=key, max_retries=0)


def test_the_local_model_completes_text_streamed_or_not(client: openai.OpenAI) -> None:
    prompt = "The capital of France is"
    whole = client.completions.create(
        model=DEFAULT_CHAT_MODEL, prompt=prompt, max_tokens=12, temperature=0
    )
    assert whole.object == "text_completion" and whole.model == DEFAULT_CHAT_MODEL
    [choice] = whole.choices
    assert choice.text and choice.finish_reason in ("length", "stop")
    assert whole.usage and 0 < whole.usage.completion_tokens <= 12
    # No chat template: the prompt's tokens are its own (a chat would add the template's).
    assert whole.usage.prompt_tokens <= 8
    chunks = list(
        client.completions.create(
            model=DEFAULT_CHAT_MODEL, prompt=prompt, max_tokens=12, temperature=0,
            stream=True, stream_options={"include_usage": True},
        )
    )  # fmt: skip
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == choice.text  # temperature 0: the same text either way
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    # OpenAI's default length is 16 tokens.
    default = client.completions.create(
        model=DEFAULT_CHAT_MODEL, prompt="Once upon a time", temperature=0
    )
    assert default.usage and default.usage.completion_tokens <= 16


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"echo": True}, "echo"),
        ({"suffix": "end"}, "suffix"),
        ({"best_of": 3}, "best_of"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"max_tokens": 100_000}, "max_tokens"),
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"n": 2}, "n"),
    ],
)
def test_what_the_local_engine_cannot_honour_is_refused_by_name(
    hearth: Running, extra: dict, param: str
) -> None:
    body = {"model": DEFAULT_CHAT_MODEL, "prompt": "Hello", "max_tokens": 4} | extra
    reply = httpx.post(f"{hearth.url}/v1/completions", json=body, headers=admin_headers(hearth))
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and param in (error["param"] or ""), error


@pytest.fixture(scope="module")
def remote(postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    with TimedEngine() as upstream, FakeOpenAIUpstream() as chat_only:
        settings = Settings(
            database_url=postgres.new_database(),
            data_dir=tmp_path_factory.mktemp("completions"),
            engines=[
                OpenAIEngineConfig(
                    name="gpu", base_url=upstream.base_url, models=[ModelConfig(name="timed")]
                ),
                OpenAIEngineConfig(
                    name="chat-only", base_url=chat_only.base_url, models=[ModelConfig(name="ok")]
                ),
                OllamaEngineConfig(
                    name="ollama", base_url=f"http://127.0.0.1:{free_port()}", connect_timeout=0.5,
                    models=[ModelConfig(name="llama3")],
                ),
            ],
        )  # fmt: skip
        with running(create_app(settings)) as server:
            yield server


def test_an_openai_compatible_upstream_is_asked_for_completions(remote: Running) -> None:
    client = openai.OpenAI(base_url=f"{remote.url}/v1", api_key="unused", max_retries=0)
    whole = client.completions.create(model="timed", prompt="x", max_tokens=3)
    assert (
        whole.choices[0].text == "w0 w1 w2 " and whole.usage and whole.usage.completion_tokens == 3
    )
    chunks = list(client.completions.create(model="timed", prompt="x", max_tokens=4, stream=True))
    assert [c.choices[0].text for c in chunks] == ["w0 ", "w1 ", "w2 ", "w3 "]
    assert all(c.model == "timed" and c.object == "text_completion" for c in chunks)


def test_an_engine_that_cannot_complete_text_says_so(remote: Running) -> None:
    reply = httpx.post(f"{remote.url}/v1/completions", json={"model": "llama3", "prompt": "Hi"})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "prompt" and "/v1/chat/completions" in error["message"]


def test_an_upstream_without_completions_is_a_400_and_its_chat_goes_on(remote: Running) -> None:
    """A server that has chat but no /v1/completions answers 404 there: the client is told,
    and the deployment is not counted as failing (its chat keeps working)."""
    for i in range(8):  # more than the circuit breaker's failures
        body = {"model": "ok", "prompt": "x", "stream": bool(i % 2)}
        reply = httpx.post(f"{remote.url}/v1/completions", json=body)
        assert reply.status_code == 400, reply.text
        assert "no text completions" in reply.json()["error"]["message"]
    chat = httpx.post(
        f"{remote.url}/v1/chat/completions",
        json={"model": "ok", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200, chat.text
