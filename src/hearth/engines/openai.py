"""Adapter for any OpenAI-compatible server (vLLM, llama.cpp's server, LiteLLM, hosted APIs).

Requests pass through as the client sent them (unknown fields included); replies are
validated into our protocol models, so a broken upstream shows up as `UpstreamError` here
rather than as a confusing failure further down the gateway.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from hearth.config import ModelConfig, OpenAIEngineConfig
from hearth.engines.base import Embeddings, Engine
from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingResponse,
)
from hearth.errors import (
    ContextLengthExceeded,
    EngineTimeout,
    EngineUnavailable,
    HearthError,
    InvalidRequest,
    ModelNotFound,
    UpstreamError,
)

logger = logging.getLogger(__name__)

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
# `identity`: a compressed event stream only decodes in compressor-sized blocks, which
# would hold tokens back; SSE gains little from compression anyway.
_STREAM_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "text/event-stream",
    "Accept-Encoding": "identity",
}
# Statuses that mean "this engine cannot take the request now"; the balancer may retry
# elsewhere. 429 belongs here too: the client did nothing wrong.
_UNAVAILABLE = frozenset({429, 502, 503, 504})
_CONTEXT_HINTS = ("context_length", "context length", "context size", "context window")
_SSE_IGNORED_FIELDS = frozenset({"event", "id", "retry"})

_M = TypeVar("_M", bound=BaseModel)


class _ErrorInfo(NamedTuple):
    message: str
    code: str
    param: str | None
    structured: bool  # the body was an OpenAI-style error object, not e.g. an HTML page


class OpenAIEngine(Engine):
    kind = "openai"

    def __init__(self, config: OpenAIEngineConfig) -> None:
        super().__init__(config.name)
        self.config = config
        self._discover = not config.models
        self._models: list[ModelConfig] = list(config.models)
        self._client: httpx.AsyncClient | None = None

    def models(self) -> list[ModelConfig]:
        return list(self._models)

    async def start(self) -> None:
        headers = {}
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=self.config.base_url,
            headers=headers,
            timeout=httpx.Timeout(
                connect=self.config.connect_timeout,
                read=self.config.read_timeout,
                write=self.config.read_timeout,
                pool=self.config.connect_timeout,
            ),
            # Streams hold a connection for a whole generation; httpx's default cap (100)
            # would queue requests invisibly. Concurrency is the gateway's limiter's job.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        )
        if self._discover:
            try:
                await self.list_models()
            except HearthError as exc:
                # An engine that boots after us must not keep Hearth down; it serves
                # nothing until a later list_models()/health() succeeds.
                logger.warning("engine %r: model discovery failed: %s", self.name, exc)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def list_models(self) -> list[str]:
        return await self._fetch_models()

    async def health(self) -> bool:
        try:
            await self._fetch_models(quick=True)
        except HearthError:
            return False
        return True

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        payload = request.model_dump(exclude_none=True)
        payload["stream"] = False
        # OpenAI rejects stream_options on non-streaming requests.
        payload.pop("stream_options", None)
        body = await self._post("chat/completions", payload, model=request.model)
        return self._validate(ChatCompletion, body, "chat completion")

    async def chat_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        payload = request.model_dump(exclude_none=True)
        payload["stream"] = True
        # One `with` around the whole exchange: errors while sending and while reading
        # are both translated, and leaving it (including aclose() at a `yield`) closes
        # the upstream response, which stops generation there.
        with self._transport_errors():
            async with self._http.stream(
                "POST", "chat/completions", content=orjson.dumps(payload), headers=_STREAM_HEADERS
            ) as response:
                if not response.is_success:
                    await response.aread()
                    self._raise_for_status(response, model=request.model)
                async for line in response.aiter_lines():
                    data = self._sse_data(line)
                    if data is None:
                        continue
                    if data == "[DONE]":
                        return
                    yield self._parse_chunk(data)
        raise UpstreamError(f"engine '{self.name}' ended the stream before [DONE]")

    async def embed(self, model: str, texts: list[str]) -> Embeddings:
        if not texts:
            return Embeddings(vectors=[], prompt_tokens=0)
        payload = {"model": model, "input": texts, "encoding_format": "float"}
        body = await self._post("embeddings", payload, model=model)
        reply = self._validate(EmbeddingResponse, body, "embeddings")
        vectors = [
            item.embedding
            for item in sorted(reply.data, key=lambda item: item.index)
            if isinstance(item.embedding, list)  # we asked for floats, not base64
        ]
        if len(vectors) != len(texts):
            raise UpstreamError(
                f"engine '{self.name}' returned {len(vectors)} float vectors "
                f"for {len(texts)} inputs"
            )
        return Embeddings(vectors=vectors, prompt_tokens=reply.usage.prompt_tokens)

    # --- HTTP plumbing -------------------------------------------------------------------

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError(f"engine '{self.name}' is not started")
        return self._client

    async def _fetch_models(self, *, quick: bool = False) -> list[str]:
        # A health probe must answer within the connect timeout, not wait out a busy engine.
        limit = httpx.Timeout(self.config.connect_timeout) if quick else httpx.USE_CLIENT_DEFAULT
        with self._transport_errors():
            response = await self._http.get("models", headers=_JSON_HEADERS, timeout=limit)
        self._raise_for_status(response, model=None)
        body = self._loads(response.content, "model list")
        try:
            ids = [item["id"] for item in body["data"]]
        except (TypeError, KeyError) as exc:
            raise UpstreamError(f"engine '{self.name}' sent a malformed model list") from exc
        if not all(isinstance(model_id, str) for model_id in ids):
            raise UpstreamError(f"engine '{self.name}' sent a malformed model list")
        if self._discover:
            # /models does not say which models embed, so discovered ones are chat models;
            # configure embedding models explicitly.
            self._models = [ModelConfig(name=model_id) for model_id in ids]
        return ids

    async def _post(self, path: str, payload: dict[str, Any], *, model: str) -> Any:
        with self._transport_errors():
            response = await self._http.post(
                path, content=orjson.dumps(payload), headers=_JSON_HEADERS
            )
        self._raise_for_status(response, model=model)
        return self._loads(response.content, path)

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            phase = type(exc).__name__.removesuffix("Timeout").lower() or "request"
            raise EngineTimeout(f"engine '{self.name}' timed out ({phase})") from exc
        except httpx.NetworkError as exc:
            raise EngineUnavailable(f"engine '{self.name}' is unreachable: {exc}") from exc
        except httpx.HTTPError as exc:
            # Protocol errors, including a connection dropped in the middle of a body.
            raise UpstreamError(f"engine '{self.name}' broke the HTTP exchange: {exc}") from exc

    def _raise_for_status(self, response: httpx.Response, *, model: str | None) -> None:
        status = response.status_code
        if response.is_success:
            return
        info = _error_info(response.content, fallback=response.reason_phrase)
        where = f"engine '{self.name}' answered {status}"
        if status in _UNAVAILABLE:
            raise EngineUnavailable(f"{where}: {info.message}")
        if status >= 500 or status < 400:
            raise UpstreamError(f"{where}: {info.message}")
        if status in (401, 403):
            # Our credentials, not the client's: reporting 4xx would blame the caller.
            raise UpstreamError(f"{where}: the engine rejected Hearth's credentials")
        if status == 404:
            if model is not None and info.structured:
                raise ModelNotFound(model)
            raise UpstreamError(f"{where} for {response.request.url.path}; check base_url")
        text = f"{info.message} {info.code}".lower()
        if any(hint in text for hint in _CONTEXT_HINTS):
            raise ContextLengthExceeded(info.message, param=info.param)
        # The client's mistake (a bad parameter): show the engine's own words.
        raise InvalidRequest(info.message, param=info.param)

    # --- parsing ---------------------------------------------------------------------------

    def _sse_data(self, line: str) -> str | None:
        """The payload of a `data:` line; None for lines that carry no event data."""
        if not line or line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if field == "data":
            value = value.removeprefix(" ")
            return value or None
        if field in _SSE_IGNORED_FIELDS:
            return None
        raise UpstreamError(
            f"engine '{self.name}' sent a malformed event-stream line: {_clip(line)}"
        )

    def _parse_chunk(self, data: str) -> ChatCompletionChunk:
        payload = self._loads(data, "stream chunk")
        # vLLM and others report failures after the 200 as an error object in the stream.
        if isinstance(payload, dict) and (
            payload.get("error") is not None or payload.get("object") == "error"
        ):
            info = _error_info(data.encode(), fallback="unknown error")
            raise UpstreamError(f"engine '{self.name}' failed mid-stream: {info.message}")
        return self._validate(ChatCompletionChunk, payload, "stream chunk")

    def _loads(self, body: bytes | str, what: str) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"engine '{self.name}' sent malformed JSON ({what})") from exc

    def _validate(self, model: type[_M], payload: Any, what: str) -> _M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise UpstreamError(
                f"engine '{self.name}' sent an invalid {what}: {where}: {first['msg']}"
            ) from exc


def _error_info(body: bytes, *, fallback: str) -> _ErrorInfo:
    """Read an error body in the shapes OpenAI-compatible servers use."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return _ErrorInfo(_clip(text) or fallback, "", None, structured=False)
    source: dict[str, Any] | None = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):  # OpenAI, llama.cpp, LiteLLM
            source = error
        elif isinstance(error, str):  # Ollama
            return _ErrorInfo(_clip(error), "", None, structured=True)
        elif "message" in payload:  # older vLLM: the error object at top level
            source = payload
        elif isinstance(payload.get("detail"), str):  # FastAPI's default
            return _ErrorInfo(_clip(payload["detail"]), "", None, structured=False)
    if source is None:
        text = body.decode("utf-8", errors="replace").strip()
        return _ErrorInfo(_clip(text) or fallback, "", None, structured=False)
    param = source.get("param")
    return _ErrorInfo(
        message=_clip(str(source.get("message") or fallback)),
        code=f"{source.get('code') or ''} {source.get('type') or ''}".strip(),
        param=param if isinstance(param, str) else None,
        structured=True,
    )


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
