"""Tools on the local engine depend on the model's own chat template: SmolLM2's has none, so
tools are a 400 naming them; the same weights with a template that renders tools (written
into a copy of the GGUF) call them, and the calls come back as `tool_calls`, whole or
streamed as deltas, through `hearth engine` and the official openai SDK."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import openai
import pytest

from hearth.config import DEFAULT_CHAT_MODEL, LlamaCppEngineConfig, LlamaCppModelConfig, Settings
from hearth.engine_server.app import create_engine_app
from hearth.engines._llama_server_process import find_binary
from hearth.engines.llamacpp import bundled_model_path
from tests._server import Running, running
from tests.engines._gguf import with_chat_template

if find_binary(None) is None and os.environ.get("CI") != "true":
    pytest.skip("no llama-server: `make dev` builds it", allow_module_level=True)

TOKEN = "tools-test-token"
TOOLED = "smollm2-tooled"
# SmolLM2's own template, with tools listed in the system prompt and calls rendered as
# <tool_call> JSON (the Hermes / Qwen 2.5 convention, which llama.cpp recognises).
TOOL_TEMPLATE = """\
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}
{%- else %}{{- 'You are a helpful AI assistant named SmolLM, trained by Hugging Face' }}{%- endif %}
{{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n\
You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}
{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and \
arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n\
{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- elif messages[0]['role'] != 'system' %}
{{- '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face\
<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'system' and tools %}
{%- elif message.role == 'assistant' and message.tool_calls %}
{{- '<|im_start|>assistant' }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' + tool_call.name + '", "arguments": ' }}
{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{{- '<|im_start|>user\\n<tool_response>\\n' + message.content }}
{{- '\\n</tool_response><|im_end|>\\n' }}
{%- else %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _history() -> list[dict]:
    """Earlier turns that called the tool: a model this small follows their example."""
    messages: list[dict] = []
    for n, city in enumerate(("Rome", "Berlin", "Madrid")):
        function = {"name": "get_weather", "arguments": json.dumps({"city": city})}
        call = {"id": f"call_{n}", "type": "function", "function": function}
        messages += [
            {"role": "user", "content": f"What is the weather in {city}?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
        ]
    return [*messages, {"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("tools")
    tooled = with_chat_template(bundled_model_path(), folder / "tooled.gguf", TOOL_TEMPLATE)
    models = [
        LlamaCppModelConfig(name=TOOLED, path=tooled, parallel=1),
        LlamaCppModelConfig(name=DEFAULT_CHAT_MODEL, parallel=1),
    ]
    settings = Settings(
        data_dir=folder,
        engine_api_key=TOKEN,
        engines=[LlamaCppEngineConfig(backend="llama-server", models=models)],
    )
    with running(create_engine_app(settings)) as server:
        yield server


@pytest.fixture
def client(engine: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{engine.url}/v1", api_key=TOKEN, max_retries=0, timeout=120)


def test_a_template_without_tools_refuses_them_by_name(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=DEFAULT_CHAT_MODEL, messages=_history()[-1:], tools=[WEATHER], max_tokens=8
        )
    assert refused.value.param == "tools"
    assert "chat template" in refused.value.message and "no tool support" in refused.value.message
    with pytest.raises(openai.BadRequestError) as history:
        client.chat.completions.create(model=DEFAULT_CHAT_MODEL, messages=_history(), max_tokens=8)
    assert history.value.param == "messages[1].tool_calls"


def test_a_tool_call_comes_back_as_tool_calls(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=TOOLED, messages=_history(), tools=[WEATHER], temperature=0, max_tokens=60
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_a_tool_call_streams_as_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=TOOLED, messages=_history(), tools=[WEATHER], temperature=0, max_tokens=60,
        stream=True,
    )  # fmt: skip
    deltas = [d for c in stream if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert len(deltas) > 1  # the arguments arrive piece by piece
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(arguments) == {"city": "Paris"}


def test_a_named_tool_choice_calls_that_tool(client: openai.OpenAI) -> None:
    # llama-server takes tool_choice as a string only: a named function is asked of it as
    # "required", with that function alone.
    reply = client.chat.completions.create(
        model=TOOLED, messages=_history(), tools=[TIME, WEATHER], temperature=0, max_tokens=60,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )  # fmt: skip
    [call] = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(
            model=TOOLED, messages=_history(), tools=[TIME], max_tokens=8,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )  # fmt: skip
    assert unknown.value.param == "tool_choice"


def test_tool_choice_none_answers_in_text(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=TOOLED, messages=_history(), tools=[WEATHER], tool_choice="none",
        temperature=0, max_tokens=12,
    )  # fmt: skip
    assert not reply.choices[0].message.tool_calls
    assert reply.choices[0].message.content
