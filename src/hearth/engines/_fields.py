"""What an engine adapter does with the fields of a chat request beyond the common ones
(those `ChatCompletionRequest` declares): honour it, or refuse it with a 400 naming it. A
field is never ignored, except one that asks nothing of the model (`asks_nothing`)."""

from __future__ import annotations

from typing import Any

from hearth.engines.protocol import ChatCompletionRequest
from hearth.errors import InvalidRequest

# Who the caller is, for the provider's abuse monitoring and cache routing: they ask nothing
# of the model. The gateway honours them (hearth.gateway.identifiers: the usage row's end
# user, routing by prompt_cache_key); engines accept them, and OpenAI-compatible upstreams
# get them too.
IDENTIFIERS = frozenset({"safety_identifier", "prompt_cache_key"})

# Ollama's options without an OpenAI name (its Modelfile parameters), which Hearth's
# /api/chat passes as fields of these names: whatever their value, each asks for something
# (`use_mmap: false` as much as `top_k: 5`). The last four are deprecated in Ollama.
OLLAMA_OPTIONS = frozenset(
    {
        "num_ctx", "num_keep", "num_batch", "num_gpu", "main_gpu", "num_thread", "numa",
        "low_vram", "use_mmap", "use_mlock", "top_k", "min_p", "typical_p", "tfs_z",
        "repeat_penalty", "repeat_last_n", "mirostat", "mirostat_tau", "mirostat_eta",
        "penalize_newline",
    }
)  # fmt: skip
DEPRECATED_OLLAMA_OPTIONS = frozenset({"f16_kv", "logits_all", "vocab_only", "embedding_only"})

# Why a field is refused, where there is more to say than that it is not supported.
_WHY = {
    "store": "chat completions are not stored (the Responses API, /v1/responses, stores "
    "its responses)",
    "metadata": "it tags stored chat completions, and chat completions are not stored",
    "audio": "the model answers in text only",
    "modalities": "the model answers in text only: ['text']",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "the model cannot search the web",
    "functions": "use `tools` (functions are OpenAI's deprecated form of them)",
    "function_call": "use `tool_choice` (function_call is OpenAI's deprecated form of it)",
    "service_tier": "there is one service tier: 'auto' or 'default'",
    "reasoning_effort": "the model does not reason before it answers ('none' is accepted)",
    "think": "the model does not reason before it answers (false is accepted)",
    "verbosity": "the model's verbosity cannot be set",
}


def asks_nothing(name: str, value: Any) -> bool:
    """Whether a field asks nothing of the model, and so is honoured by doing nothing: null,
    false, an empty list or object, and the values OpenAI documents as the default."""
    if name in OLLAMA_OPTIONS or name in DEPRECATED_OLLAMA_OPTIONS:
        return value is None
    if value is None or value is False or value == [] or value == {}:
        return True
    if name in IDENTIFIERS:
        return isinstance(value, str)
    return {
        "tool_choice": value == "none",
        "response_format": value == {"type": "text"},
        "parallel_tool_calls": True,  # with no tools, nothing to call in parallel
        "service_tier": value in ("auto", "default"),
        "modalities": value == ["text"],
        "reasoning_effort": value == "none",
    }.get(name, False)


def refuse_unsupported(
    request: ChatCompletionRequest, honoured: frozenset[str], engine: str, hint: str = ""
) -> None:
    """A 400 naming the first field beyond the common ones that `engine` (its description,
    for the message) cannot honour: neither in `honoured` nor asking nothing."""
    for name, value in sorted((request.model_extra or {}).items()):
        if name in honoured or asks_nothing(name, value):
            continue
        why = f": {_WHY[name]}" if name in _WHY else hint
        raise InvalidRequest(f"'{name}' is not supported by {engine}{why}", param=name)
