"""OpenAI's chat request in the terms of Ollama's /api/chat: messages (tool calls and their
results included), options, and the fields beyond the common ones that Ollama honours;
any other is a 400 naming it (engines/_fields.py).

Reference: https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
"""

from __future__ import annotations

from typing import Any

import orjson

from hearth.engines._fields import OLLAMA_OPTIONS, refuse_unsupported
from hearth.engines.protocol import ChatCompletionRequest
from hearth.errors import InvalidRequest

# Ollama has no "developer" role; OpenAI defines it as the newer name for "system".
_ROLES = {"developer": "system"}
_THINK_LEVELS = ("low", "medium", "high")
# Ollama's options pass in `options` as they are (its deprecated ones are refused).
HONOURED = OLLAMA_OPTIONS | {
    "response_format", "tools", "tool_choice", "parallel_tool_calls", "logprobs",
    "top_logprobs", "reasoning_effort", "think", "keep_alive",
}  # fmt: skip


def chat_payload(
    request: ChatCompletionRequest, engine: str, *, stream: bool, keep_alive: str | None
) -> dict[str, Any]:
    """The /api/chat body for `request`; `engine` names the engine in refusals."""
    extra = request.model_extra or {}
    refuse_unsupported(request, HONOURED, f"Ollama (engine '{engine}')")
    options = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "num_predict": request.token_limit,
        "stop": request.stop,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
    } | {name: extra.get(name) for name in sorted(OLLAMA_OPTIONS)}
    payload: dict[str, Any] = {
        "model": request.model,
        "messages": _messages(request),
        "stream": stream,
    }
    # Unset options are left out so that the model's own defaults (its Modelfile) apply.
    if chosen := {key: value for key, value in options.items() if value is not None}:
        payload["options"] = chosen
    keep_alive = extra.get("keep_alive", keep_alive)
    if keep_alive is not None:
        payload["keep_alive"] = keep_alive
    payload |= _format(extra.get("response_format"))
    payload |= _tools(extra)
    payload |= _think(extra)
    if extra.get("logprobs"):
        payload["logprobs"] = True
        if extra.get("top_logprobs"):
            payload["top_logprobs"] = extra["top_logprobs"]
    elif extra.get("top_logprobs"):
        raise InvalidRequest("top_logprobs needs logprobs: true", param="top_logprobs")
    return payload


def _messages(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    """Text messages; an assistant's tool calls with their arguments as objects (OpenAI
    sends JSON text); a tool's result with the name of the tool it answers (Ollama's
    `tool_name`, where OpenAI gives the call's id)."""
    names: dict[str, str] = {}  # tool call id → function name
    messages = []
    for i, message in enumerate(request.messages):
        text, images = _content(message.content, i)
        entry: dict[str, Any] = {"role": _ROLES.get(message.role, message.role), "content": text}
        if images:
            entry["images"] = images
        extra = message.model_extra or {}
        if extra.get("tool_calls"):
            entry["tool_calls"] = [_call(call, i, names) for call in extra["tool_calls"]]
        if message.role == "tool" and extra.get("tool_call_id") in names:
            entry["tool_name"] = names[extra["tool_call_id"]]
        messages.append(entry)
    return messages


def _content(content: str | list[dict[str, Any]] | None, index: int) -> tuple[str, list[str]]:
    """A message's text, and its images as Ollama takes them (base64, from OpenAI's
    `image_url` parts with a `data:` URL; Ollama fetches no links)."""
    if content is None or isinstance(content, str):
        return content or "", []
    texts, images = [], []
    for j, part in enumerate(content):
        where = f"messages[{index}].content[{j}]"
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url")
            header, _, data = url.partition(",") if isinstance(url, str) else ("", "", "")
            if not (header.startswith("data:image/") and header.endswith(";base64") and data):
                raise InvalidRequest(
                    "Ollama takes images as data: URLs (data:image/png;base64,...), not links",
                    param=where,
                )
            images.append(data)
        else:
            raise InvalidRequest(f"a content part of type {kind!r} cannot be sent", param=where)
    return "".join(texts), images


def _call(call: Any, index: int, names: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(
            "a tool call needs a function with a name", param=f"messages[{index}].tool_calls"
        )
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(
                "a tool call's arguments must be a JSON object",
                param=f"messages[{index}].tool_calls",
            ) from exc
    if isinstance(call.get("id"), str):
        names[call["id"]] = function["name"]
    return {"function": {"name": function["name"], "arguments": arguments}}


def _format(form: Any) -> dict[str, Any]:
    """OpenAI's response_format as Ollama's `format`: "json", or the schema itself."""
    if form is None:
        return {}
    kind = form.get("type") if isinstance(form, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"format": "json"}
    spec = form.get("json_schema") if kind == "json_schema" else None
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise InvalidRequest(
            "response_format must be {'type': 'text'}, {'type': 'json_object'} or "
            "{'type': 'json_schema', 'json_schema': {'schema': {...}}}",
            param="response_format",
        )
    return {"format": spec["schema"]}


def _tools(extra: dict[str, Any]) -> dict[str, Any]:
    """Tools pass as they are (Ollama takes OpenAI's shape). Ollama has no `tool_choice`:
    the model decides, which is "auto"; "none" is honoured by sending no tools. It has no
    `parallel_tool_calls` either: a model may call several tools at once, which is true."""
    tools = extra.get("tools") or []
    choice = extra.get("tool_choice")
    if choice is not None and choice not in ("auto", "none"):
        raise InvalidRequest(
            f"tool_choice {choice!r} cannot be honoured by Ollama, which lets the model "
            "decide whether to call a tool ('auto' or 'none')",
            param="tool_choice",
        )
    if not tools or choice == "none":
        return {}
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    if extra.get("parallel_tool_calls") is False:
        raise InvalidRequest(
            "parallel_tool_calls false cannot be honoured by Ollama, whose models may call "
            "several tools at once",
            param="parallel_tool_calls",
        )
    return {"tools": tools}


def _think(extra: dict[str, Any]) -> dict[str, Any]:
    """Ollama's `think` (true, false, or a level), from itself or from OpenAI's
    `reasoning_effort` ("none": no thinking; "low", "medium", "high")."""
    effort = extra.get("reasoning_effort")
    if effort is not None:
        if effort == "none":
            return {"think": False}
        if effort not in _THINK_LEVELS:
            raise InvalidRequest(
                "reasoning_effort must be 'none', 'low', 'medium' or 'high' for Ollama",
                param="reasoning_effort",
            )
        return {"think": effort}
    think = extra.get("think")
    if think is None:
        return {}
    if not isinstance(think, bool) and think not in _THINK_LEVELS:
        raise InvalidRequest("think must be true, false, 'low', 'medium' or 'high'", param="think")
    return {"think": think}
