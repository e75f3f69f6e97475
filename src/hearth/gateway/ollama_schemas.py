"""Ollama's request shapes (https://github.com/ollama/ollama/blob/main/docs/api.md), field by
field as the official `ollama` SDK sends them. A field Ollama does not have is a 400 naming
it, never ignored; one Hearth cannot honour is refused by name where it is translated
(ollama_api.py) or by the engine that would answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_FORBID = ConfigDict(extra="forbid")


class OllamaToolCall(BaseModel):
    model_config = _FORBID

    function: dict[str, Any] = Field(description="`name`, and `arguments` as an object.")


class OllamaMessage(BaseModel):
    model_config = _FORBID

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = Field(default=None, description="Base64-encoded images.")
    thinking: str | None = Field(
        default=None,
        description="Accepted; an earlier turn's thinking is not shown to the model again, "
        "as chat templates leave it out.",
    )
    tool_calls: list[OllamaToolCall] | None = None
    tool_name: str | None = Field(default=None, description="The tool a `tool` message answers.")


class OllamaOptions(BaseModel):
    """Ollama's options (its Modelfile parameters). Those with an OpenAI name are passed as
    it; the others under their own names, which the engines honour or refuse by name."""

    model_config = _FORBID

    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    num_predict: int | None = Field(default=None, description="-1: no limit.")
    stop: list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # Without an OpenAI name:
    num_ctx: int | None = None
    num_keep: int | None = None
    num_batch: int | None = None
    num_gpu: int | None = None
    main_gpu: int | None = None
    num_thread: int | None = None
    numa: bool | None = None
    low_vram: bool | None = None
    f16_kv: bool | None = None
    logits_all: bool | None = None
    vocab_only: bool | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    embedding_only: bool | None = None
    top_k: int | None = None
    min_p: float | None = None
    typical_p: float | None = None
    tfs_z: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    penalize_newline: bool | None = None

    def others(self) -> dict[str, Any]:
        """The options set that have no OpenAI name."""
        return {
            name: value
            for name, value in self.model_dump(exclude_none=True).items()
            if name not in _OPENAI_NAMED
        }


_OPENAI_NAMED = frozenset(
    {"temperature", "top_p", "seed", "num_predict", "stop", "presence_penalty", "frequency_penalty"}
)


class GenerateBase(BaseModel):
    model_config = _FORBID

    model: str = Field(min_length=1)
    stream: bool = Field(default=True, description="NDJSON chunk by chunk (Ollama's default).")
    format: Literal["", "json"] | dict[str, Any] | None = Field(
        default=None, description='"json", or a JSON schema the answer must follow.'
    )
    options: OllamaOptions | None = None
    keep_alive: str | float | None = Field(
        default=None, description="How long the model stays loaded after the request."
    )
    think: bool | Literal["low", "medium", "high"] | None = Field(
        default=None, description="Whether (or how hard) a reasoning model thinks first."
    )
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


class OllamaChatRequest(GenerateBase):
    messages: list[OllamaMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class OllamaGenerateRequest(GenerateBase):
    prompt: str = ""
    system: str | None = None
    images: list[str] | None = None
    # Refused when set (ollama_api.py): no raw prompts, fill-in-the-middle, prompt
    # templates, returned contexts or image generation.
    suffix: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None


class OllamaEmbedRequest(BaseModel):
    model_config = _FORBID

    model: str = Field(min_length=1)
    input: str | list[str]
    truncate: bool = True
    dimensions: int | None = None
    options: OllamaOptions | None = None
    keep_alive: str | float | None = None


class OllamaEmbeddingsRequest(BaseModel):
    """The older /api/embeddings: one prompt, one vector."""

    model_config = _FORBID

    model: str = Field(min_length=1)
    prompt: str
    options: OllamaOptions | None = None
    keep_alive: str | float | None = None


class OllamaShowRequest(BaseModel):
    model_config = _FORBID

    model: str = Field(default="", description="The model's name (older clients: `name`).")
    name: str = ""
    verbose: bool = Field(default=False, description="Accepted: Hearth has no more to show.")


class OllamaPullRequest(BaseModel):
    """/api/pull: passed on to the Ollama engines that serve the model."""

    model_config = _FORBID

    model: str = Field(default="", description="The model's name (older clients: `name`).")
    name: str = ""
    insecure: bool = Field(default=False, description="Allow a registry without TLS.")
    stream: bool = True
