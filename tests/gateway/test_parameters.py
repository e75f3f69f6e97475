"""Every documented parameter of OpenAI's chat completions (/v1/chat/completions) and of
Ollama's chat (/api/chat, its top-level fields and its options), against every engine kind:
the local llama-server engine (the real SmolLM2), an `openai` engine in front of the fake
OpenAI-compatible upstream and an `ollama` engine in front of the fake Ollama. Each is
honoured, and its effect is seen (in the answer, in llama-server's own record of the
request's sampling, or in what the upstream received), or it is a 400 naming it; never a
200 that dropped it.

References: https://platform.openai.com/docs/api-reference/chat/create (the `openai` SDK's
`CompletionCreateParams`) and https://github.com/ollama/ollama/blob/main/docs/api.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import ollama
import openai
import orjson
import pytest

from hearth.config import (
    DEFAULT_CHAT_MODEL,
    LlamaCppEngineConfig,
    LlamaCppModelConfig,
    ModelConfig,
    OllamaEngineConfig,
    OpenAIEngineConfig,
    Settings,
)
from hearth.engines.llama_server import LlamaServerEngine
from hearth.server import create_app
from tests._server import Running, running
from tests.fakes.ollama_upstream import FakeOllama
from tests.fakes.openai_upstream import FakeOpenAIUpstream

LOCAL, REMOTE, OLLAMA = DEFAULT_CHAT_MODEL, "remote-chat", "ollama-chat"
KINDS = {"llama-server": LOCAL, "openai": REMOTE, "ollama": OLLAMA}
ASK = [{"role": "user", "content": "What is the capital of France?"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
COLOUR = {
    "type": "object",
    "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}},
    "required": ["colour"],
    "additionalProperties": False,
}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "colour", "schema": COLOUR}}


@pytest.fixture(scope="module")
def openai_upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(model_ids=["ok"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def ollama_upstream() -> Iterator[FakeOllama]:
    with FakeOllama(model_names=["llama3.2", "tool-caller"], loaded=[]) as fake:
        yield fake


@pytest.fixture(scope="module")
def hearth(
    openai_upstream: FakeOpenAIUpstream, ollama_upstream: FakeOllama, postgres, tmp_path_factory
) -> Iterator[Running]:
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("parameters"),
        engines=[
            # One slot: llama-server's /slots then shows the sampling of the last request.
            LlamaCppEngineConfig(
                backend="llama-server",
                models=[LlamaCppModelConfig(name=LOCAL, parallel=1)],
            ),
            OpenAIEngineConfig(
                name="gpu",
                base_url=openai_upstream.base_url,
                models=[ModelConfig(name=REMOTE, upstream="ok")],
            ),
            OllamaEngineConfig(
                name="ollama",
                base_url=ollama_upstream.base_url,
                models=[
                    ModelConfig(name=OLLAMA, upstream="llama3.2"),
                    ModelConfig(name="ollama-tools", upstream="tool-caller"),
                ],
            ),
        ],
    )
    with running(create_app(settings)) as server:
        yield server


# --- what each case sees --------------------------------------------------------------------


@dataclass
class Seen:
    """A request's outcome, and what the engine behind it was asked."""

    status: int
    body: Any  # the JSON reply, or a stream's events (parsed)
    text: str = ""  # the answer's text
    upstream: dict[str, Any] = field(default_factory=dict)  # what a fake upstream received
    sampling: dict[str, Any] = field(default_factory=dict)  # llama-server's record (/slots)


Check = Callable[[Seen], None]


class _Walker:
    def __init__(
        self, server: Running, openai_fake: FakeOpenAIUpstream, ollama_fake: FakeOllama
    ) -> None:
        self.url = server.url
        self.app = server.app
        self.openai_fake = openai_fake
        self.ollama_fake = ollama_fake

    def _local(self) -> httpx.Client:
        [engine] = [e for e in self.app.state.engines if isinstance(e, LlamaServerEngine)]
        socket = engine._children[LOCAL].process.options.socket
        transport = httpx.HTTPTransport(uds=str(socket))
        return httpx.Client(transport=transport, base_url="http://llama-server")

    def token_id(self, text: str) -> int:
        with self._local() as local:
            [token] = local.post("/tokenize", json={"content": text}).json()["tokens"]
        return token

    def send(self, path: str, kind: str, body: dict[str, Any]) -> Seen:
        self.openai_fake.reset()
        self.ollama_fake.reset()
        response = httpx.post(f"{self.url}{path}", json=body, timeout=120)
        seen = Seen(response.status_code, None)
        ndjson = response.headers.get("content-type", "").startswith("application/x-ndjson")
        if response.status_code == 200 and (body.get("stream") or ndjson):
            seen.body = _events(response.text)
            seen.text = "".join(_piece(event) for event in seen.body)
        else:
            seen.body = response.json()
            seen.text = _answer(seen.body)
        if kind == "openai" and self.openai_fake.chats:
            seen.upstream = self.openai_fake.last("/v1/chat/completions").json
        elif kind == "ollama" and any(r.path == "/api/chat" for r in self.ollama_fake.requests):
            seen.upstream = self.ollama_fake.last("/api/chat").json
        elif kind == "llama-server" and response.status_code == 200:
            with self._local() as local:
                seen.sampling = local.get("/slots").json()[0]["params"]
        return seen


def _events(text: str) -> list[Any]:
    if text.startswith("data: ") or "\ndata: " in text:  # server-sent events
        lines = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        return [orjson.loads(line) for line in lines if line != "[DONE]"]
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def _piece(event: dict[str, Any]) -> str:
    if "choices" in event:
        return "".join(c["delta"].get("content") or "" for c in event["choices"])
    return (event.get("message") or {}).get("content") or event.get("response") or ""


def _answer(body: Any) -> str:
    if isinstance(body, dict) and body.get("choices"):
        return body["choices"][0]["message"].get("content") or ""
    if isinstance(body, dict) and isinstance(body.get("message"), dict):
        return body["message"].get("content") or ""
    return ""


@pytest.fixture(scope="module")
def walker(
    hearth: Running, openai_upstream: FakeOpenAIUpstream, ollama_upstream: FakeOllama
) -> _Walker:
    return _Walker(hearth, openai_upstream, ollama_upstream)


# --- checks ------------------------------------------------------------------------------


def refused(param: str) -> Check:
    """A 400 whose error names `param`: OpenAI's `error.param` on /v1, the message of
    Ollama's `{"error": "..."}` on /api."""

    def check(seen: Seen) -> None:
        assert seen.status == 400, seen.body
        error = seen.body["error"]
        if isinstance(error, dict):
            assert error["param"] == param, error
        else:
            assert param.split(".")[-1] in error, error

    return check


def ok(*checks: Check) -> Check:
    def check(seen: Seen) -> None:
        assert seen.status == 200, seen.body
        for each in checks:
            each(seen)

    return check


def sent(name: str, value: Any) -> Check:
    """The upstream received `name` with `value` (a dotted name: inside an object)."""

    def check(seen: Seen) -> None:
        found: Any = seen.upstream
        for part in name.split("."):
            assert isinstance(found, dict) and part in found, (name, seen.upstream)
            found = found[part]
        assert found == value, (name, found)

    return check


def sampled(name: str, value: float) -> Check:
    """llama-server sampled the request with `name` at `value` (its /slots record)."""

    def check(seen: Seen) -> None:
        assert seen.sampling[name] == pytest.approx(value, rel=1e-6), (name, seen.sampling)

    return check


def answer(test: Callable[[Seen], bool]) -> Check:
    def check(seen: Seen) -> None:
        assert test(seen), (seen.text, seen.body)

    return check


def usage_chunk(seen: Seen) -> None:
    assert any(event.get("usage") for event in seen.body), seen.body


def streamed(seen: Seen) -> None:
    assert isinstance(seen.body, list) and len(seen.body) > 1, seen.body


def _choice(seen: Seen) -> dict[str, Any]:
    return seen.body["choices"][0]


def _json_colour(seen: Seen) -> bool:
    return json.loads(seen.text)["colour"] in ("red", "green", "blue")


def _no_space(seen: Seen) -> bool:
    return " " not in seen.text and _choice(seen)["finish_reason"] == "stop"


def _tokens(count: int) -> Check:
    def check(seen: Seen) -> None:
        usage = seen.body.get("usage") or {}
        tokens = usage.get("completion_tokens", seen.body.get("eval_count"))
        assert tokens == count, seen.body

    return check


def _logprobs(top: int) -> Check:
    def check(seen: Seen) -> None:
        entries = (_choice(seen)["logprobs"] or {})["content"]
        assert entries and all(len(e.get("top_logprobs") or []) == top for e in entries)

    return check


def _ollama_logprobs(top: int) -> Check:
    def check(seen: Seen) -> None:
        entries = seen.body["logprobs"]
        assert entries and all(len(e.get("top_logprobs") or []) == top for e in entries)

    return check


# --- the OpenAI walk: parameter → (fields sent, {engine kind: check}) ---------------------

Fields = dict[str, Any] | Callable[[_Walker], dict[str, Any]]
REFUSED_BY_BOTH = {
    "modalities": ["text", "audio"],
    "audio": {"voice": "alloy", "format": "wav"},
    "prediction": {"type": "content", "content": "Hello there"},
    "service_tier": "priority",
    "store": True,
    "metadata": {"topic": "walk"},
    "web_search_options": {"search_context_size": "low"},
    "functions": [TOOL["function"]],
    "function_call": {"name": "get_weather"},
    "verbosity": "low",
    "prompt_cache_retention": "24h",
}


def _forced_token(walker: _Walker) -> dict[str, Any]:
    return {"logit_bias": {str(walker.token_id("Yes")): 100}, "temperature": 0}


OPENAI_WALK: dict[str, tuple[Fields, dict[str, Check]]] = {
    "stream": ({"stream": True}, {
        "llama-server": ok(streamed), "openai": ok(streamed, sent("stream", True)),
        "ollama": ok(streamed, sent("stream", True)),
    }),
    "stream_options": ({"stream": True, "stream_options": {"include_usage": True}}, {
        "llama-server": ok(usage_chunk), "openai": ok(usage_chunk), "ollama": ok(usage_chunk),
    }),
    "max_tokens": ({"max_tokens": 3}, {
        "llama-server": ok(_tokens(3)), "openai": ok(sent("max_tokens", 3)),
        "ollama": ok(sent("options.num_predict", 3)),
    }),
    "max_completion_tokens": ({"max_completion_tokens": 3}, {
        "llama-server": ok(_tokens(3)), "openai": ok(sent("max_completion_tokens", 3)),
        "ollama": ok(sent("options.num_predict", 3)),
    }),
    "temperature": ({"temperature": 0.3}, {
        "llama-server": ok(sampled("temperature", 0.3)), "openai": ok(sent("temperature", 0.3)),
        "ollama": ok(sent("options.temperature", 0.3)),
    }),
    "top_p": ({"top_p": 0.7}, {
        "llama-server": ok(sampled("top_p", 0.7)), "openai": ok(sent("top_p", 0.7)),
        "ollama": ok(sent("options.top_p", 0.7)),
    }),
    "stop": ({"stop": [" "], "temperature": 0, "max_tokens": 12}, {
        "llama-server": ok(answer(_no_space)), "openai": ok(sent("stop", [" "])),
        "ollama": ok(sent("options.stop", [" "])),
    }),
    "seed": ({"seed": 42}, {
        "llama-server": ok(sampled("seed", 42)), "openai": ok(sent("seed", 42)),
        "ollama": ok(sent("options.seed", 42)),
    }),
    "n": ({"n": 2}, {kind: refused("n") for kind in KINDS}),
    "presence_penalty": ({"presence_penalty": 0.5}, {
        "llama-server": ok(sampled("presence_penalty", 0.5)),
        "openai": ok(sent("presence_penalty", 0.5)),
        "ollama": ok(sent("options.presence_penalty", 0.5)),
    }),
    "frequency_penalty": ({"frequency_penalty": 0.25}, {
        "llama-server": ok(sampled("frequency_penalty", 0.25)),
        "openai": ok(sent("frequency_penalty", 0.25)),
        "ollama": ok(sent("options.frequency_penalty", 0.25)),
    }),
    "response_format": ({"response_format": SCHEMA_FORMAT, "max_tokens": 40}, {
        "llama-server": ok(answer(_json_colour)),
        "openai": ok(sent("response_format", SCHEMA_FORMAT)),
        "ollama": ok(sent("format", COLOUR)),
    }),
    "logprobs": ({"logprobs": True}, {
        "llama-server": ok(_logprobs(0)), "openai": ok(sent("logprobs", True)),
        "ollama": ok(sent("logprobs", True), _logprobs(0)),
    }),
    "top_logprobs": ({"logprobs": True, "top_logprobs": 2}, {
        "llama-server": ok(_logprobs(2)), "openai": ok(sent("top_logprobs", 2)),
        "ollama": ok(sent("top_logprobs", 2), _logprobs(2)),
    }),
    # SmolLM2's template has no tool support (test_llama_server_tools.py: one that has).
    "tools": ({"tools": [TOOL]}, {
        "llama-server": refused("tools"), "openai": ok(sent("tools", [TOOL])),
        "ollama": ok(sent("tools", [TOOL])),
    }),
    "tool_choice": ({"tool_choice": "required"}, {
        "llama-server": refused("tool_choice"), "openai": ok(sent("tool_choice", "required")),
        "ollama": refused("tool_choice"),
    }),
    "parallel_tool_calls": ({"tools": [TOOL], "parallel_tool_calls": False}, {
        "llama-server": refused("tools"), "openai": ok(sent("parallel_tool_calls", False)),
        "ollama": refused("parallel_tool_calls"),
    }),
    "logit_bias": (_forced_token, {
        "llama-server": ok(answer(lambda seen: seen.text.startswith("YesYes"))),
        "openai": ok(answer(lambda seen: list(seen.upstream["logit_bias"].values()) == [100])),
        "ollama": refused("logit_bias"),
    }),
    "reasoning_effort": ({"reasoning_effort": "high"}, {
        "llama-server": refused("reasoning_effort"),
        "openai": ok(sent("reasoning_effort", "high")),
        "ollama": ok(sent("think", "high")),
    }),
    # Who the caller is: nothing asked of the model (engines/_fields.py, IDENTIFIERS).
    "user": ({"user": "end-user-7"}, {
        "llama-server": ok(), "openai": ok(sent("user", "end-user-7")), "ollama": ok(),
    }),
    "safety_identifier": ({"safety_identifier": "end-user-7"}, {
        "llama-server": ok(), "openai": ok(sent("safety_identifier", "end-user-7")),
        "ollama": ok(),
    }),
    "prompt_cache_key": ({"prompt_cache_key": "walk"}, {
        "llama-server": ok(), "openai": ok(sent("prompt_cache_key", "walk")), "ollama": ok(),
    }),
} | {
    name: ({name: value}, {
        "llama-server": refused(name), "openai": ok(sent(name, value)), "ollama": refused(name),
    })
    for name, value in REFUSED_BY_BOTH.items()
}  # fmt: skip


def test_the_walk_covers_every_documented_parameter() -> None:
    from openai.types.chat import completion_create_params

    documented = set(completion_create_params.CompletionCreateParamsBase.__annotations__)
    # The two every request has; and two the SDK has that OpenAI's reference does not
    # document yet.
    covered = set(OPENAI_WALK) | {"model", "messages", "moderation", "prompt_cache_options"}
    assert documented <= covered, documented - covered


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("param", list(OPENAI_WALK))
def test_every_openai_parameter_is_honoured_or_refused(
    walker: _Walker, param: str, kind: str
) -> None:
    fields, checks = OPENAI_WALK[param]
    extra = fields(walker) if callable(fields) else fields
    body = {"model": KINDS[kind], "messages": ASK, "max_tokens": 8} | extra
    checks[kind](walker.send("/v1/chat/completions", kind, body))


# --- the Ollama walk: /api/chat's options and fields -------------------------------------

# llama-server's samplers under Ollama's names (what /slots calls them).
SAMPLED = {
    "temperature": 0.3, "top_p": 0.7, "top_k": 7, "seed": 42, "repeat_penalty": 1.3,
    "presence_penalty": 0.5, "frequency_penalty": 0.25, "mirostat": 2, "mirostat_tau": 4.0,
    "mirostat_eta": 0.2, "min_p": 0.02, "typical_p": 0.9, "repeat_last_n": 32,
}  # fmt: skip
# Load-time and deprecated options: the model runs as Hearth's settings say.
NOT_LOCAL = {
    "num_keep": 4, "tfs_z": 0.5, "penalize_newline": True, "num_batch": 256, "num_gpu": 1,
    "main_gpu": 1, "num_thread": 2, "numa": True, "low_vram": True, "use_mmap": False,
    "use_mlock": True,
}  # fmt: skip
DEPRECATED = {"f16_kv": True, "logits_all": True, "vocab_only": True, "embedding_only": True}
# What OpenAI calls an option that it has under another name.
OPENAI_NAME = {"num_predict": "max_tokens"}


def _ollama_option_cases() -> dict[str, tuple[dict[str, Any], dict[str, Check]]]:
    cases: dict[str, tuple[dict[str, Any], dict[str, Check]]] = {}
    for name, value in SAMPLED.items():
        cases[name] = ({name: value}, {
            "llama-server": ok(sampled(name, value)), "openai": ok(sent(name, value)),
            "ollama": ok(sent(f"options.{name}", value)),
        })  # fmt: skip
    for name, value in NOT_LOCAL.items():
        cases[name] = ({name: value}, {
            "llama-server": refused(name), "openai": ok(sent(name, value)),
            "ollama": ok(sent(f"options.{name}", value)),
        })  # fmt: skip
    for name, value in DEPRECATED.items():
        cases[name] = ({name: value}, {
            "llama-server": refused(name), "openai": ok(sent(name, value)),
            "ollama": refused(name),
        })  # fmt: skip
    cases["num_predict"] = ({"num_predict": 3}, {
        "llama-server": ok(_tokens(3)), "openai": ok(sent("max_tokens", 3)),
        "ollama": ok(sent("options.num_predict", 3)),
    })  # fmt: skip
    cases["stop"] = ({"stop": [" "], "temperature": 0, "num_predict": 12}, {
        "llama-server": ok(answer(lambda s: " " not in s.text and s.body["eval_count"] < 12)),
        "openai": ok(sent("stop", [" "])), "ollama": ok(sent("options.stop", [" "])),
    })  # fmt: skip
    cases["num_ctx"] = ({"num_ctx": 1024}, {
        "llama-server": ok(), "openai": ok(sent("num_ctx", 1024)),
        "ollama": ok(sent("options.num_ctx", 1024)),
    })  # fmt: skip
    cases["num_ctx beyond the window"] = ({"num_ctx": 1 << 20}, {
        "llama-server": refused("num_ctx"), "openai": ok(sent("num_ctx", 1 << 20)),
        "ollama": ok(sent("options.num_ctx", 1 << 20)),
    })  # fmt: skip
    cases["an unknown option"] = (
        {"temprature": 0.3},
        {kind: refused("temprature") for kind in KINDS},
    )
    return cases


OLLAMA_OPTIONS = _ollama_option_cases()
OLLAMA_FIELDS: dict[str, tuple[dict[str, Any], dict[str, Check]]] = {
    "stream": ({"stream": True}, {
        "llama-server": ok(streamed), "openai": ok(streamed, sent("stream", True)),
        "ollama": ok(streamed, sent("stream", True)),
    }),
    "format": ({"format": COLOUR, "options": {"num_predict": 40}}, {
        "llama-server": ok(answer(_json_colour)),
        "openai": ok(sent("response_format.json_schema.schema", COLOUR)),
        "ollama": ok(sent("format", COLOUR)),
    }),
    "tools": ({"tools": [TOOL]}, {
        "llama-server": refused("tools"), "openai": ok(sent("tools", [TOOL])),
        "ollama": ok(sent("tools", [TOOL])),
    }),
    "keep_alive": ({"keep_alive": "10m"}, {
        "llama-server": ok(), "openai": ok(sent("keep_alive", "10m")),
        "ollama": ok(sent("keep_alive", "10m")),
    }),
    "keep_alive 0": ({"keep_alive": 0}, {
        "llama-server": refused("keep_alive"), "openai": ok(sent("keep_alive", 0)),
        "ollama": ok(sent("keep_alive", 0)),
    }),
    "think": ({"think": True}, {
        "llama-server": refused("think"), "openai": ok(sent("think", True)),
        "ollama": ok(sent("think", True)),
    }),
    "logprobs": ({"logprobs": True, "top_logprobs": 2}, {
        "llama-server": ok(_ollama_logprobs(2)),
        "openai": ok(sent("logprobs", True), sent("top_logprobs", 2)),
        "ollama": ok(sent("logprobs", True), _ollama_logprobs(2)),
    }),
    "an unknown field": ({"bogus": 1}, {kind: refused("bogus") for kind in KINDS}),
}  # fmt: skip


def test_the_walk_covers_every_ollama_option() -> None:
    from ollama._types import Options

    walked = set(OLLAMA_OPTIONS) - {"num_ctx beyond the window", "an unknown option"}
    assert set(Options.model_fields) <= walked, set(Options.model_fields) - walked


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("option", list(OLLAMA_OPTIONS))
def test_every_ollama_option_is_honoured_or_refused(
    walker: _Walker, option: str, kind: str
) -> None:
    options, checks = OLLAMA_OPTIONS[option]
    body = {"model": KINDS[kind], "messages": ASK, "stream": False,
            "options": {"num_predict": 8} | options}  # fmt: skip
    checks[kind](walker.send("/api/chat", kind, body))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", list(OLLAMA_FIELDS))
def test_every_ollama_field_is_honoured_or_refused(walker: _Walker, name: str, kind: str) -> None:
    fields, checks = OLLAMA_FIELDS[name]
    body = {"model": KINDS[kind], "messages": ASK, "stream": False,
            "options": {"num_predict": 8}} | fields  # fmt: skip
    checks[kind](walker.send("/api/chat", kind, body))


# --- tool calls through the Ollama engine, and Ollama's shape of them ----------------------


def test_ollamas_tool_calls_come_back_in_openais_shape(hearth: Running) -> None:
    client = openai.OpenAI(base_url=f"{hearth.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model="ollama-tools", messages=ASK, tools=[TOOL])
    choice = reply.choices[0]
    [call] = choice.message.tool_calls or []
    assert choice.finish_reason == "tool_calls" and call.id
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    stream = client.chat.completions.create(
        model="ollama-tools", messages=ASK, tools=[TOOL], stream=True
    )
    chunks = [c for c in stream if c.choices]
    [delta] = [d for c in chunks for d in c.choices[0].delta.tool_calls or []]
    assert delta.index == 0 and delta.function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_calls_and_results_reach_ollama_in_its_shape(
    hearth: Running, ollama_upstream: FakeOllama
) -> None:
    arguments = {"city": "Paris"}
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps(arguments)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]  # fmt: skip
    client = openai.OpenAI(base_url=f"{hearth.url}/v1", api_key="unused", max_retries=0)
    client.chat.completions.create(model=OLLAMA, messages=history, tools=[TOOL])
    sent_messages = ollama_upstream.last("/api/chat").json["messages"]
    assert sent_messages[1]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": arguments}}
    ]
    assert sent_messages[2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


@pytest.mark.parametrize("stream", [False, True])
def test_api_chat_answers_tool_calls_in_ollamas_shape(
    hearth: Running, openai_upstream: FakeOpenAIUpstream, stream: bool
) -> None:
    history = [
        *ASK,
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]  # fmt: skip
    with ollama.Client(host=hearth.url) as client:
        reply = client.chat(model="ollama-tools", messages=history, tools=[TOOL], stream=stream)
        parts = list(reply) if stream else [reply]
        calls = [call for part in parts for call in part.message.tool_calls or []]
        assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
            ("get_weather", {"city": "Paris"})
        ]
        # What an OpenAI-compatible upstream is sent: the call with an id, its result tied
        # to it.
        client.chat(model=REMOTE, messages=history, stream=False)
    sent_messages = openai_upstream.last("/v1/chat/completions").json["messages"]
    [call] = sent_messages[1]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "Rome"}
    assert sent_messages[2]["tool_call_id"] == call["id"]


# --- /api/generate and /api/embed: what they cannot honour ------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("suffix", "}"), ("template", "{{ .Prompt }}"), ("context", [1, 2, 3]), ("raw", True),
     ("width", 512), ("height", 512), ("steps", 4), ("bogus", 1)],
)  # fmt: skip
def test_generate_refuses_what_it_cannot_honour(hearth: Running, field: str, value: Any) -> None:
    body = {"model": REMOTE, "prompt": "hi", "stream": False, field: value}
    response = httpx.post(f"{hearth.url}/api/generate", json=body, timeout=30)
    assert response.status_code == 400 and field in response.json()["error"], response.text


@pytest.mark.parametrize(
    ("field", "value"),
    [("truncate", False), ("options", {"num_ctx": 512}), ("keep_alive", 0), ("bogus", 1)],
)
def test_embed_refuses_what_it_cannot_honour(hearth: Running, field: str, value: Any) -> None:
    body = {"model": "remote-chat", "input": ["hi"], field: value}
    response = httpx.post(f"{hearth.url}/api/embed", json=body, timeout=30)
    name = "num_ctx" if field == "options" else field
    assert response.status_code == 400 and name in response.json()["error"], response.text


def test_what_the_ollama_sdk_sends_by_default_is_accepted(hearth: Running) -> None:
    """`tools: []`, `options: {}` (LangChain's unset options) and the like ask nothing."""
    with ollama.Client(host=hearth.url) as client:
        reply = client.chat(model=REMOTE, messages=ASK, stream=False, options={})
        assert reply.message.content
        assert client.generate(model=REMOTE, prompt="hi", stream=False, options={}).response
        assert client.show(REMOTE).capabilities
