"""Ollama's request shapes (https://github.com/ollama/ollama/blob/main/docs/api.md), as
far as Hearth reads them; unknown fields are ignored, as Ollama ignores them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class OllamaMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = Field(default=None, description="Base64-encoded images.")
    thinking: str | None = None


class OllamaOptions(BaseModel):
    """The options with an OpenAI equivalent; others (num_ctx, top_k...) are ignored, as
    Ollama ignores options a model does not use."""

    model_config = ConfigDict(extra="ignore")

    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    num_predict: int | None = Field(default=None, description="-1: no limit.")
    stop: list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


class GenerateBase(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    stream: bool = Field(default=True, description="NDJSON chunk by chunk (Ollama's default).")
    format: Literal["json"] | dict[str, Any] | None = Field(
        default=None, description='"json", or a JSON schema the answer must follow.'
    )
    options: OllamaOptions | None = None
    keep_alive: str | float | None = Field(default=None, description="Accepted; ignored.")


class OllamaChatRequest(GenerateBase):
    messages: list[OllamaMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class OllamaGenerateRequest(GenerateBase):
    prompt: str = ""
    system: str | None = None
    images: list[str] | None = None


class OllamaEmbedRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[str]
    truncate: bool = True
    dimensions: int | None = None


class OllamaEmbeddingsRequest(BaseModel):
    """The older /api/embeddings: one prompt, one vector."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    prompt: str


class OllamaShowRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(default="", description="The model's name (older clients: `name`).")
    name: str = ""


class OllamaPullRequest(BaseModel):
    """/api/pull: passed on to the Ollama engines that serve the model."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="", description="The model's name (older clients: `name`).")
    name: str = ""
    insecure: bool = Field(default=False, description="Allow a registry without TLS.")
    stream: bool = True
