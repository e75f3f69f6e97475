"""The chat fields beyond the common ones that llama-server honours, checked as OpenAI (or
Ollama, for its options) checks them; any other is a 400 naming it (engines/_fields.py).

Tools depend on the model: llama-server renders them with the GGUF's own Jinja template
and parses the model's tool calls into `tool_calls`, but only a template written for tools
does either. With one that is not, llama-server drops `tools` silently (the prompt is the
same with or without them) and treats `tool_choice: "required"` as "auto"; so Hearth asks
the child which its template is (`chat_template_caps` in its /props) and refuses tools by
name for a model whose template has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hearth.config import LlamaCppModelConfig
from hearth.engines._fields import refuse_unsupported
from hearth.engines.protocol import ChatCompletionChunk, ChatCompletionRequest
from hearth.errors import InvalidRequest

_ENGINE = "Hearth's local engine (llama.cpp)"
_FORMATS = ("text", "json_object", "json_schema")
_TOOL_FIELDS = frozenset({"tools", "tool_choice", "parallel_tool_calls"})
_TOOL_CHOICES = ("none", "auto", "required")

# llama.cpp's samplers beyond OpenAI's, under the names llama-server and Ollama's options
# share (Hearth's /api/chat passes those options as these fields): name → (type, low, high).
SAMPLERS: dict[str, tuple[type, float, float]] = {
    "top_k": (int, 0, 1 << 31),
    "min_p": (float, 0.0, 1.0),
    "typical_p": (float, 0.0, 1.0),
    "repeat_penalty": (float, 0.0, 100.0),
    "repeat_last_n": (int, -1, 1 << 31),
    "mirostat": (int, 0, 2),
    "mirostat_tau": (float, 0.0, 100.0),
    "mirostat_eta": (float, 0.0, 1.0),
}
# Checked here, not passed on: the window is the model's (`n_ctx`), and a loaded model
# stays loaded.
_CHECKED = frozenset({"num_ctx", "keep_alive"})
HONOURED = frozenset({"response_format", "logprobs", "top_logprobs", "logit_bias"}) | set(SAMPLERS)


@dataclass(frozen=True)
class TemplateCaps:
    """What the model's chat template can render, as llama-server reports it."""

    tools: bool = False
    vision: bool = False  # it reads images (`modalities.vision`: a multimodal projector)

    @classmethod
    def from_props(cls, props: object) -> TemplateCaps:
        """From llama-server's /props (`chat_template_caps`, `modalities`); none known: no
        tools, no images."""
        modalities = props.get("modalities") if isinstance(props, dict) else None
        vision = isinstance(modalities, dict) and modalities.get("vision") is True
        caps = props.get("chat_template_caps") if isinstance(props, dict) else None
        if not isinstance(caps, dict):
            return cls(vision=vision)
        # Both: a template that lists the tools and renders the calls in the history.
        return cls(
            tools=all(caps.get(key) is True for key in ("supports_tools", "supports_tool_calls")),
            vision=vision,
        )


NO_TOOLS = TemplateCaps()


def passed_on(
    request: ChatCompletionRequest, config: LlamaCppModelConfig, caps: TemplateCaps
) -> dict[str, Any]:
    """The fields beyond the common ones to send llama-server, each checked; a 400 naming
    the first that cannot be honoured."""
    extra = request.model_extra or {}
    passed: dict[str, Any] = {}
    if caps.tools:
        passed |= _tools(extra)
    else:
        _refuse_tools(extra, config)
    honoured = HONOURED | _CHECKED | (_TOOL_FIELDS if caps.tools else frozenset())
    refuse_unsupported(request, honoured, _ENGINE)
    passed |= _response_format(extra.get("response_format"))
    passed |= _logprobs(extra.get("logprobs"), extra.get("top_logprobs"))
    if extra.get("logit_bias"):
        passed["logit_bias"] = _logit_bias(extra["logit_bias"])
    for name, (kind, low, high) in SAMPLERS.items():
        if extra.get(name) is not None:
            passed[name] = _number(name, extra[name], kind, low, high)
    _check_window(extra.get("num_ctx"), config)
    _check_keep_alive(extra.get("keep_alive"))
    return passed


def _refuse_tools(extra: dict[str, Any], config: LlamaCppModelConfig) -> None:
    why = (
        f"model '{config.name}' cannot call tools: its chat template (from its GGUF file) "
        "has no tool support"
    )
    if extra.get("tools"):
        raise InvalidRequest(f"'tools' is not supported: {why}", param="tools")
    choice = extra.get("tool_choice")
    if choice is not None and choice != "none":
        raise InvalidRequest(
            f"tool_choice {choice!r} cannot be honoured: {why}", param="tool_choice"
        )


def _tools(extra: dict[str, Any]) -> dict[str, Any]:
    """`tools`, `tool_choice` and `parallel_tool_calls` as llama-server takes them. It
    takes a choice as a string only (an object falls back to "auto"): a named function is
    asked for as "required" with that function alone."""
    tools = extra.get("tools") or []
    if not isinstance(tools, list) or not all(_is_function(tool) for tool in tools):
        raise InvalidRequest(
            "tools must be a list of {'type': 'function', 'function': {'name': ...}}",
            param="tools",
        )
    choice = extra.get("tool_choice")
    if isinstance(choice, dict):
        function = choice.get("function") if choice.get("type") == "function" else None
        name = function.get("name") if isinstance(function, dict) else None
        chosen = [tool for tool in tools if tool["function"]["name"] == name]
        if not chosen:
            raise InvalidRequest(
                "tool_choice must name a function given in tools", param="tool_choice"
            )
        tools, choice = chosen, "required"
    elif choice is not None and choice not in _TOOL_CHOICES:
        raise InvalidRequest(
            "tool_choice must be 'none', 'auto', 'required' or a function", param="tool_choice"
        )
    if choice == "required" and not tools:
        raise InvalidRequest("tool_choice 'required' needs tools", param="tool_choice")
    passed: dict[str, Any] = {}
    if tools and choice != "none":
        passed["tools"] = tools
        passed["tool_choice"] = choice or "auto"
        parallel = extra.get("parallel_tool_calls")
        if parallel is not None and not isinstance(parallel, bool):
            raise InvalidRequest(
                "parallel_tool_calls must be true or false", param="parallel_tool_calls"
            )
        # OpenAI's default is true; llama-server's is false.
        passed["parallel_tool_calls"] = parallel is not False
    return passed


def _is_function(tool: object) -> bool:
    return (
        isinstance(tool, dict)
        and tool.get("type") == "function"
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    )


def _response_format(form: object) -> dict[str, Any]:
    """JSON, or JSON obeying a schema: llama.cpp turns the schema into a grammar, so every
    answer parses."""
    if form is None:
        return {}
    kind = form.get("type") if isinstance(form, dict) else None
    if kind not in _FORMATS:
        raise InvalidRequest(
            "response_format.type must be one of " + ", ".join(f"'{f}'" for f in _FORMATS),
            param="response_format",
        )
    if kind == "json_schema":
        spec = form.get("json_schema")  # type: ignore[union-attr]
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise InvalidRequest(
                "response_format.json_schema.schema must be a JSON schema (an object)",
                param="response_format",
            )
    return {} if kind == "text" else {"response_format": form}


def _logprobs(logprobs: object, top: object) -> dict[str, Any]:
    if logprobs is not None and not isinstance(logprobs, bool):
        raise InvalidRequest("logprobs must be true or false", param="logprobs")
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
            raise InvalidRequest(
                "top_logprobs must be an integer from 0 to 20", param="top_logprobs"
            )
        if not logprobs:
            raise InvalidRequest("top_logprobs needs logprobs: true", param="top_logprobs")
    if not logprobs:
        return {}
    return {"logprobs": True, "top_logprobs": top} if top else {"logprobs": True}


def drop_alternatives(chunk: ChatCompletionChunk) -> None:
    """Each token's `top_logprobs` emptied, as OpenAI answers `logprobs` alone (llama-server
    takes `top_logprobs: 0` as no log probabilities at all, and gives some unasked)."""
    for choice in chunk.choices:
        for entry in (choice.logprobs or {}).get("content") or []:
            if isinstance(entry, dict):
                entry["top_logprobs"] = []


def _logit_bias(bias: object) -> dict[str, float]:
    """OpenAI's shape: token ids (as strings) of the model's own vocabulary, each with a
    bias from -100 (never) to 100 (always)."""
    if not isinstance(bias, dict):
        raise InvalidRequest("logit_bias must map token ids to biases", param="logit_bias")
    checked: dict[str, float] = {}
    for token, value in bias.items():
        if not (isinstance(token, str) and token.isdigit()):
            raise InvalidRequest(f"logit_bias: {token!r} is not a token id", param="logit_bias")
        checked[token] = _number("logit_bias", value, float, -100, 100)
    return checked


def _number(name: str, value: object, kind: type, low: float, high: float) -> float:
    ok_type = isinstance(value, int) if kind is int else isinstance(value, int | float)
    if not ok_type or isinstance(value, bool) or not low <= value <= high:  # type: ignore[operator]
        what = "an integer" if kind is int else "a number"
        raise InvalidRequest(f"{name} must be {what} from {low} to {high}", param=name)
    return value  # type: ignore[return-value]


def _check_window(asked: object, config: LlamaCppModelConfig) -> None:
    """Ollama's `num_ctx` sets the window the model runs with; here each model has one,
    `n_ctx`, which honours any request for that much or less."""
    if asked is None:
        return
    if not isinstance(asked, int) or isinstance(asked, bool) or asked < 1:
        raise InvalidRequest("num_ctx must be a positive integer", param="num_ctx")
    if asked > config.n_ctx:
        raise InvalidRequest(
            f"num_ctx is {asked}, and model '{config.name}' has a context window of "
            f"{config.n_ctx} tokens",
            param="num_ctx",
        )


def _check_keep_alive(value: object) -> None:
    """Ollama's `keep_alive`: how long the model stays loaded after the request. The local
    engine keeps its models loaded as long as it runs, which honours any duration but
    zero (unload now)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidRequest("keep_alive must be a duration ('5m') or seconds", param="keep_alive")
    if value in (0, "0", "0s", "0m", "0h"):
        raise InvalidRequest(
            "keep_alive 0 asks to unload the model, and the local engine keeps its models loaded",
            param="keep_alive",
        )
