"""/v1 chat completions through the official openai SDK against a running Hearth with the
real SmolLM2 model in llama.cpp."""

from __future__ import annotations

import json
import time

import httpx
import ollama
import openai
import pytest

from hearth.config import DEFAULT_CHAT_MODEL
from tests._server import Running

MODEL = DEFAULT_CHAT_MODEL
HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def test_models_lists_default_chat_and_embedding_models(client: openai.OpenAI) -> None:
    ids = {m.id: m.owned_by for m in client.models.list()}
    assert ids == {MODEL: "local", "all-minilm-l6-v2": "local-embeddings"}
    one = client.models.retrieve(MODEL)
    assert (one.id, one.object, one.owned_by) == (MODEL, "model", "local")
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("org/no-such-model")
    assert missing.value.body["param"] == "model"
    assert "'org/no-such-model' does not exist" in missing.value.message


def test_chat_answers_with_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=24)
    assert reply.object == "chat.completion"
    assert reply.model == MODEL
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage.prompt_tokens > 5 and 0 < usage.completion_tokens <= 24
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_max_tokens_ends_with_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a long story about a fox."}],
        max_tokens=5,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 5


def test_same_seed_same_answer(client: openai.OpenAI) -> None:
    def ask() -> str:
        return (
            client.chat.completions.create(
                model=MODEL, messages=HELLO, max_tokens=16, temperature=0.9, seed=1234
            )
            .choices[0]
            .message.content
        )

    assert ask() == ask()


def test_stop_sequence_is_honoured(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Count from 1 to 10 separated by commas."}]
    full = (
        client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=40, temperature=0, seed=1
        )
        .choices[0]
        .message.content
    )
    assert "3" in full, full
    cut = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=40, temperature=0, seed=1, stop=["3"]
    )
    assert "3" not in cut.choices[0].message.content
    assert cut.choices[0].finish_reason == "stop"


def test_stream_yields_chunks_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) >= 3  # token by token, not one buffered blob
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.completion_tokens >= len(content_chunks)
    assert usage.prompt_tokens > 5


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=5, stream=True)
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_stream_and_non_stream_agree(client: openai.OpenAI) -> None:
    kwargs = {"model": MODEL, "messages": HELLO, "max_tokens": 12, "temperature": 0, "seed": 7}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    parts = client.chat.completions.create(stream=True, **kwargs)
    assert "".join(c.choices[0].delta.content or "" for c in parts if c.choices) == whole


def test_client_disconnect_stops_generation(base_url: str, hearth: Running) -> None:
    app = hearth.app
    engine = next(e for e in app.state.engines if e.kind == "llamacpp")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell a very long story."}],
        "max_tokens": 1500,
        "stream": True,
        "temperature": 1.0,
    }
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, timeout=30) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        seen = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: ") for line in seen)
        assert engine.active_generations == 1
    # The connection is closed; generation must stop within a moment, not run to 1500 tokens.
    deadline = time.monotonic() + 5
    while engine.active_generations and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.active_generations == 0
    metrics = httpx.get(f"{base_url}/metrics").text
    assert f'hearth_generations_total{{model="{MODEL}",outcome="cancelled"}}' in metrics


def test_client_disconnect_stops_a_non_streaming_generation(base_url: str, hearth: Running) -> None:
    engine = next(e for e in hearth.app.state.engines if e.kind == "llamacpp")
    body = {
        "model": MODEL,
        # At temperature 0 SmolLM2 runs to max_tokens on this one (1,500 tokens, ~30 s).
        "messages": [{"role": "user", "content": "Repeat the word 'hello' 500 times."}],
        "max_tokens": 1500,
        "temperature": 0,
    }
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
        httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=1.5)
    deadline = time.monotonic() + 5  # it stops at the next token, not 1,500 tokens later
    while engine.active_generations and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.active_generations == 0


def test_server_answers_health_while_generating(base_url: str) -> None:
    body = {
        "model": MODEL,
        "messages": HELLO,
        "max_tokens": 200,
        "stream": True,
        "temperature": 1.0,
    }
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, timeout=30) as resp:
        next(resp.iter_lines())
        started = time.perf_counter()
        assert httpx.get(f"{base_url}/healthz").status_code == 200
        assert time.perf_counter() - started < 0.5


COLOUR = {
    "type": "object",
    "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}},
    "required": ["colour"],
    "additionalProperties": False,
}


def test_a_json_schema_is_obeyed_by_the_local_engine(client: openai.OpenAI) -> None:
    """llama.cpp's grammar-constrained sampling: the answer parses and obeys the schema,
    whatever the small model would have said, streamed or not."""
    ask = [{"role": "user", "content": "What colour is the sky? Answer in JSON."}]
    schema = {"type": "json_schema", "json_schema": {"name": "colour", "schema": COLOUR}}
    for temperature in (0, 1.0):
        reply = client.chat.completions.create(
            model=MODEL, messages=ask, max_tokens=40, temperature=temperature,
            response_format=schema,
        )  # fmt: skip
        answer = json.loads(reply.choices[0].message.content)
        assert set(answer) == {"colour"} and answer["colour"] in ("red", "green", "blue")
    stream = client.chat.completions.create(
        model=MODEL, messages=ask, max_tokens=40, response_format=schema, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert json.loads(text)["colour"] in ("red", "green", "blue")
    plain = client.chat.completions.create(
        model=MODEL, messages=ask, max_tokens=60, response_format={"type": "json_object"}
    )
    if plain.choices[0].finish_reason == "stop":  # cut at max_tokens, it may not have closed
        assert isinstance(json.loads(plain.choices[0].message.content), dict)


def test_logprobs_come_from_llama_cpp(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )
    tokens = reply.choices[0].logprobs.content
    assert len(tokens) == reply.usage.completion_tokens
    assert "".join(t.token for t in tokens) == reply.choices[0].message.content
    for token in tokens:
        assert token.logprob <= 0 and len(token.top_logprobs) == 3
        # At temperature 0 the token chosen is the most likely one.
        assert token.logprob == pytest.approx(max(t.logprob for t in token.top_logprobs))
    streamed = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=5, temperature=0, logprobs=True, stream=True
    )
    chunks = [c for c in streamed if c.choices]
    pieces = [t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert len(pieces) == 5 and all(t.logprob <= 0 for t in pieces)
    assert "".join(t.token for t in pieces) == "".join(c.choices[0].delta.content or ""
                                                       for c in chunks)  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ("tool_choice", "required"),
        ("store", True),
        ("web_search_options", {"search_context_size": "low"}),
        ("response_format", {"type": "yaml"}),
        ("top_logprobs", 2),  # without logprobs: true
    ],
)
def test_what_the_local_engine_cannot_honour_is_a_400_naming_it(
    client: openai.OpenAI, field: str, value: object
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=4, extra_body={field: value}
        )
    assert refused.value.param == field, refused.value.message
    assert field in refused.value.message


def test_fields_that_ask_for_nothing_are_honoured(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=4,
        extra_body={"tools": [], "tool_choice": "none", "logprobs": False,
                    "response_format": {"type": "text"}},
    )  # fmt: skip
    assert reply.choices[0].message.content is not None


def test_ollamas_format_is_obeyed_and_its_tools_refused_by_the_local_engine(
    base_url: str,
) -> None:
    ask = [{"role": "user", "content": "What colour is grass? Answer in JSON."}]
    with ollama.Client(host=base_url) as local:
        reply = local.chat(
            model=MODEL, messages=ask, format=COLOUR, stream=False, options={"num_predict": 40}
        )
        assert json.loads(reply.message.content)["colour"] in ("red", "green", "blue")
        tool = {"type": "function", "function": {"name": "f", "description": "x",
                "parameters": {"type": "object", "properties": {}}}}  # fmt: skip
        with pytest.raises(ollama.ResponseError) as refused:
            local.chat(model=MODEL, messages=ask, tools=[tool], stream=False)
    assert refused.value.status_code == 400 and "'tools'" in refused.value.error
