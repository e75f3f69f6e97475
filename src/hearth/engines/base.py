"""The Engine interface every inference backend implements, and the registry of kinds.

An engine serves one or more models. The gateway resolves a public model name to an
engine and the engine's own name for it, then calls the engine with that name in
`request.model`. Engines raise the exceptions in `hearth.errors`, never HTTP errors.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from hearth.config import ModelConfig
from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
)
from hearth.errors import InvalidRequest


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


@dataclass(frozen=True)
class EngineLoad:
    """What an engine reports about its own load; None where it reports nothing.

    The balancer reads it (polled in the background, never per request) to send a
    request where it will start soonest and not to swap a model in needlessly.
    """

    running: int | None = None  # requests generating now
    waiting: int | None = None  # requests queued, not started
    capacity: int | None = None  # requests it generates at once (llama.cpp's slots)
    kv_cache_usage: float | None = None  # 0..1 (vLLM)
    loaded_models: frozenset[str] | None = None  # upstream names in memory (Ollama)


class Engine(ABC):
    """An inference backend. Create with its config; `start()` before use, `close()` after."""

    kind: str

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def models(self) -> Sequence[ModelConfig]:
        """The models this engine serves, with public and upstream names."""

    async def start(self) -> None:
        """Load weights or open connections. Raise ConfigError for what cannot work."""

    async def close(self) -> None:
        """Release everything `start()` took."""

    @abstractmethod
    async def list_models(self) -> list[str]:
        """Ask the engine itself which models it has (upstream names)."""

    @abstractmethod
    async def health(self) -> bool:
        """True when the engine can take a request now."""

    async def load(self) -> EngineLoad | None:
        """The engine's own report of its load, if it has one (polled by the health task)."""
        return None

    def takes_images(self, model: str) -> bool | None:
        """Whether the engine reports that `model` (its own name) reads images; None when
        it does not say (a model's `vision` setting decides then, else no)."""
        return None

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        raise InvalidRequest(f"model '{request.model}' does not support chat completions")

    def chat_stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        """Yield chunks as the engine produces them. Closing the iterator stops generation."""
        raise InvalidRequest(f"model '{request.model}' does not support chat completions")

    async def embed(self, model: str, texts: list[str]) -> Embeddings:
        raise InvalidRequest(f"model '{model}' does not support embeddings")

    async def complete(self, request: CompletionRequest) -> Completion:
        """A text completion (/v1/completions): the prompt as it is, no chat template."""
        raise InvalidRequest(_no_completions(self, request.model), param="prompt")

    def complete_stream(self, request: CompletionRequest) -> AsyncIterator[Completion]:
        """Yield completion chunks as they come. Closing the iterator stops generation."""
        raise InvalidRequest(_no_completions(self, request.model), param="prompt")


def _no_completions(engine: Engine, model: str) -> str:
    return (
        f"model '{model}' is served by a {engine.kind} engine, which Hearth cannot ask for "
        "text completions; use /v1/chat/completions"
    )


# kind -> "module:Class"; modules are imported only when an engine of that kind is built,
# so a gateway-only deployment never imports llama.cpp or onnxruntime.
_KINDS: dict[str, str] = {
    # llama-server (many requests at once) where installed, else in-process llama.cpp.
    "llamacpp": "hearth.engines.llama_server:llamacpp_engine",
    "openai": "hearth.engines.openai:OpenAIEngine",
    "ollama": "hearth.engines.ollama:OllamaEngine",
    "embedder": "hearth.engines.embedder:EmbedderEngine",
}


def register_engine_kind(kind: str, target: str) -> None:
    """Register an engine adapter: `target` is "package.module:ClassName"."""
    _KINDS[kind] = target


def build_engine(config: Any) -> Engine:
    """Build the engine for one entry of `Settings.engines`."""
    module_name, _, class_name = _KINDS[config.kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(config)
