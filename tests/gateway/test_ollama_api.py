"""Hearth speaking Ollama's native API, driven by the official `ollama` SDK, in front of the
fake OpenAI-compatible upstream: the same gateway calls as /v1, Ollama's shapes back."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import ollama
import orjson
import pytest

from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._server import running
from tests.fakes.openai_upstream import FakeOpenAIUpstream

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(chunk_count=4) as fake:
        yield fake


@pytest.fixture(scope="module")
def hearth_url(upstream: FakeOpenAIUpstream, postgres, tmp_path_factory) -> Iterator[str]:
    names = ["ok", "early-close", "error-400"]
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("ollama-api"),
        engines=[
            OpenAIEngineConfig(
                name="gpu",
                base_url=upstream.base_url,
                models=[ModelConfig(name=f"remote-{n}", upstream=n) for n in names]
                + [ModelConfig(name="remote-embed", upstream="fake-embed", type="embedding")],
            )
        ],
    )
    with running(create_app(settings)) as server:
        yield server.url


@pytest.fixture
def client(hearth_url: str, upstream: FakeOpenAIUpstream) -> Iterator[ollama.Client]:
    upstream.reset()
    upstream.chunk_count = 4
    with ollama.Client(host=hearth_url) as client:
        yield client


def test_tags_list_served_models(client: ollama.Client) -> None:
    names = {m.model for m in client.list().models}
    assert names == {"remote-ok", "remote-early-close", "remote-error-400", "remote-embed"}


def test_chat_answers_in_ollamas_shape(client: ollama.Client, upstream: FakeOpenAIUpstream) -> None:
    reply = client.chat(
        model="remote-ok",
        messages=[{"role": "system", "content": "be brief"}, *HI],
        stream=False,
        options={"temperature": 0.3, "num_predict": 12, "seed": 7, "top_k": 5},
    )
    assert reply.message.role == "assistant"
    assert reply.message.content == "Hello from the fake."
    assert reply.done and reply.done_reason == "stop"
    assert (reply.prompt_eval_count, reply.eval_count) == (7, 5)
    assert reply.total_duration > 0
    sent = upstream.last("/v1/chat/completions").json
    assert sent["model"] == "ok"
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert (sent["temperature"], sent["max_tokens"], sent["seed"]) == (0.3, 12, 7)


def test_chat_streams_ndjson_by_default(client: ollama.Client) -> None:
    parts = list(client.chat(model="remote-ok", messages=HI, stream=True))
    assert "".join(p.message.content for p in parts) == "tok0 tok1 tok2 tok3 "
    assert [p.done for p in parts] == [False] * 4 + [True]
    assert parts[-1].done_reason == "stop" and parts[-1].eval_count == 4


def test_raw_stream_is_ndjson(hearth_url: str) -> None:
    body = {"model": "remote-ok", "messages": HI}  # no "stream": Ollama streams by default
    with httpx.stream("POST", f"{hearth_url}/api/chat", json=body, timeout=10) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [line for line in response.iter_lines() if line]
    assert len(lines) == 5 and '"done":true' in lines[-1]


def test_latest_tag_resolves_to_the_bare_name(client: ollama.Client) -> None:
    reply = client.chat(model="remote-ok:latest", messages=HI, stream=False)
    assert reply.message.content == "Hello from the fake."


def test_generate_sends_system_and_prompt(
    client: ollama.Client, upstream: FakeOpenAIUpstream
) -> None:
    reply = client.generate(
        model="remote-ok", prompt="Why?", system="Answer briefly.", stream=False
    )
    assert reply.response == "Hello from the fake." and reply.done
    sent = upstream.last("/v1/chat/completions").json
    assert sent["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Why?"},
    ]
    streamed = list(client.generate(model="remote-ok", prompt="Why?", stream=True))
    assert "".join(p.response for p in streamed) == "tok0 tok1 tok2 tok3 "
    assert streamed[-1].done


def test_empty_prompt_only_loads(client: ollama.Client) -> None:
    reply = client.generate(model="remote-ok", prompt="", stream=False)
    assert reply.done and reply.done_reason == "load" and reply.response == ""


def test_embed_keeps_input_order(client: ollama.Client) -> None:
    reply = client.embed(model="remote-embed", input=["a", "bbb"])
    # The fake encodes each text's length first; it answers in reversed order on purpose.
    assert [v[0] for v in reply.embeddings] == [1.0, 3.0]
    assert reply.prompt_eval_count == 2
    single = client.embeddings(model="remote-embed", prompt="four")
    assert single.embedding[0] == 4.0


def test_unknown_model_is_ollamas_404(client: ollama.Client, hearth_url: str) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="nope", messages=HI, stream=False)
    assert caught.value.status_code == 404
    assert caught.value.error == 'model "nope" not found, try pulling it first'
    with pytest.raises(ollama.ResponseError) as caught:
        client.show("nope")
    assert caught.value.status_code == 404
    raw = httpx.post(f"{hearth_url}/api/generate", json={"model": "nope", "prompt": "x"})
    assert raw.status_code == 404 and set(raw.json()) == {"error"}


def test_bad_requests_are_400_with_ollamas_shape(client: ollama.Client, hearth_url: str) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="remote-ok", messages=HI, stream=False, options={"temperature": 9})
    assert caught.value.status_code == 400 and "temperature" in caught.value.error
    raw = httpx.post(f"{hearth_url}/api/chat", json={"messages": HI})
    assert raw.status_code == 400 and raw.json()["error"].startswith("model:")
    # An upstream's own 400 passes through, in Ollama's shape.
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="remote-error-400", messages=HI, stream=False)
    assert caught.value.status_code == 400


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_a_json_body_is_read_whatever_its_content_type(
    hearth_url: str, content_type: str | None
) -> None:
    """As Ollama's own docs send it: `curl http://host/api/chat -d '{...}'` says
    application/x-www-form-urlencoded; a script may send no content type at all."""
    body = orjson.dumps({"model": "remote-ok", "messages": HI, "stream": False})
    headers = {"content-type": content_type} if content_type else {}
    with httpx.Client() as http:
        url = f"{hearth_url}/api/chat"
        request = http.build_request("POST", url, content=body, headers=headers)
        assert request.headers.get("content-type") == content_type
        reply = http.send(request)
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"]["role"] == "assistant" and reply.json()["done"] is True
    broken = httpx.post(
        f"{hearth_url}/api/chat", content=b"{not json", headers=headers or {"x": "y"}
    )
    assert broken.status_code == 400
    assert broken.json() == {"error": "invalid JSON in the request body"}


def test_a_wrong_method_is_405_in_ollamas_shape(hearth_url: str) -> None:
    reply = httpx.get(f"{hearth_url}/api/chat")
    assert reply.status_code == 405
    assert reply.json() == {"error": "method not allowed"}
    assert reply.headers["allow"] == "POST"


def test_failure_mid_stream_is_an_error_line(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        list(client.chat(model="remote-early-close", messages=HI, stream=True))
    assert "before [DONE]" in caught.value.error


def test_show_and_version(client: ollama.Client, hearth_url: str) -> None:
    shown = client.show("remote-embed")
    assert shown.capabilities == ["embedding"]
    assert httpx.get(f"{hearth_url}/api/version").json()["version"]
    running_models = client.ps().models
    assert {m.model for m in running_models} >= {"remote-ok"}
