"""Adapter for any OpenAI-compatible server (vLLM, llama.cpp's server, LiteLLM, hosted APIs).

Requests pass through as the client sent them (unknown fields included); replies are
validated into our protocol models, so a broken upstream shows up as `UpstreamError` here
rather than as a confusing failure further down the gateway.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import orjson
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ValidationError

from hearth.config import OpenAIEngineConfig
from hearth.engines._http import ErrorInfo, HttpEngine, HttpReply, clip
from hearth.engines.base import Embeddings, EngineLoad
from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingResponse,
)
from hearth.errors import HearthError, InvalidRequest, UpstreamError

_SSE_IGNORED_FIELDS = frozenset({"event", "id", "retry"})
_Event = TypeVar("_Event", bound=BaseModel)


def _says_something(chunk: ChatCompletionChunk) -> bool:
    """Whether a chunk carries more than a role: content, or another field of the delta
    (tool calls, reasoning)."""
    return any(choice.delta.content or choice.delta.model_extra for choice in chunk.choices)


class OpenAIEngine(HttpEngine[OpenAIEngineConfig]):
    kind = "openai"
    _context_hints = ("context_length", "context length", "context size", "context window")

    def _headers(self) -> dict[str, str]:
        if self.config.api_key is None:
            return {}
        return {"Authorization": f"Bearer {self.config.api_key.get_secret_value()}"}

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        payload = request.model_dump(exclude_none=True)
        payload["stream"] = False
        # OpenAI rejects stream_options on non-streaming requests.
        payload.pop("stream_options", None)
        body = await self._post("chat/completions", payload, model=request.model)
        return self._validate_json(ChatCompletion, body, "chat completion")

    async def chat_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        batches = self.chat_stream_batches(request)
        try:
            async for batch in batches:
                for chunk in batch:
                    yield chunk
        finally:
            await batches.aclose()

    async def chat_stream_batches(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        """The stream's chunks as they arrive: a list of those that arrived together (one,
        when the engine sends them apart), so that they can be passed on in one write.

        The chunks up to the first that says something (content, a tool call, reasoning;
        engines send the role alone first) are a list of their own, whatever came with
        them: when an engine sends much of its answer at once, the client's first token
        does not wait for the rest to be parsed and passed on (bench/RESULTS.md)."""
        payload = request.model_dump(exclude_none=True)
        payload["stream"] = True
        first = True
        async with self._stream(
            "chat/completions", payload, accept="text/event-stream", model=request.model
        ) as response:
            async for lines in response.aiter_line_batches():
                batch: list[ChatCompletionChunk] = []
                try:
                    for line in lines:
                        if line.startswith("data: ") and len(line) > 6:
                            data: str | None = line[6:]  # the usual line, parsed no further
                        else:
                            data = self._sse_data(line)
                            if data is None:
                                continue
                        if data == "[DONE]":
                            if batch:
                                yield batch
                            return
                        chunk = self._parse_chunk(data)
                        batch.append(chunk)
                        if first and _says_something(chunk):
                            first = False
                            yield batch
                            batch = []
                except HearthError:
                    if batch:
                        yield batch  # the good chunks before the bad one still go out
                    raise
                if batch:
                    yield batch
        raise UpstreamError(f"engine '{self.name}' ended the stream before [DONE]")

    async def complete(self, request: CompletionRequest) -> Completion:
        payload = request.model_dump(exclude_none=True)
        payload["stream"] = False
        payload.pop("stream_options", None)
        with self._completions_path():
            body = await self._post("completions", payload, model=request.model)
        return self._validate_json(Completion, body, "completion")

    async def complete_stream(self, request: CompletionRequest) -> AsyncIterator[Completion]:
        """The completion's chunks as they arrive (the same events as chat's, another shape)."""
        payload = request.model_dump(exclude_none=True)
        payload["stream"] = True
        with self._completions_path():
            opened = self._stream(
                "completions", payload, accept="text/event-stream", model=request.model
            )
            response = await opened.__aenter__()
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_exit(opened)
            async for lines in response.aiter_line_batches():
                for line in lines:
                    data = self._sse_data(line)
                    if data is None:
                        continue
                    if data == "[DONE]":
                        return
                    yield self._parse_event(Completion, data)
        raise UpstreamError(f"engine '{self.name}' ended the stream before [DONE]")

    @contextlib.contextmanager
    def _completions_path(self) -> Iterator[None]:
        """An upstream without /v1/completions (a plain 404 there, when its chat works) is
        the client's to know: a 400 saying so, not a failing deployment."""
        try:
            yield
        except UpstreamError as exc:
            if "answered 404" not in exc.message:
                raise
            raise InvalidRequest(
                f"engine '{self.name}' has no text completions (its /completions answered "
                "404); use /v1/chat/completions",
                param="prompt",
            ) from exc

    async def embed(self, model: str, texts: list[str]) -> Embeddings:
        if not texts:
            return Embeddings(vectors=[], prompt_tokens=0)
        payload = {"model": model, "input": texts, "encoding_format": "float"}
        body = await self._post_json("embeddings", payload, model=model)
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

    async def _fetch_models(self, *, quick: bool) -> list[str]:
        body = await self._get_json("models", what="model list", quick=quick)
        try:
            ids = [item["id"] for item in body["data"]]
        except (TypeError, KeyError) as exc:
            raise UpstreamError(f"engine '{self.name}' sent a malformed model list") from exc
        if not all(isinstance(model_id, str) for model_id in ids):
            raise UpstreamError(f"engine '{self.name}' sent a malformed model list")
        return ids

    # --- load (polled by the gateway's health task, never per request) --------------------

    _load_source: str | None = None  # "metrics" or "slots", once one has answered

    async def load(self) -> EngineLoad | None:
        """vLLM's or llama.cpp's Prometheus /metrics, else llama.cpp's /slots (both at the
        server's root, beside /v1). What answered is remembered, so later probes cost one
        request; a hosted API has neither, and reports nothing."""
        sources = [self._load_source] if self._load_source else ["metrics", "slots"]
        for source in sources:
            try:
                response = await self._root_get(source)
            except HearthError:
                return None
            if not response.is_success:
                continue
            try:
                if source == "metrics":
                    load = _metrics_load(response.text)
                else:
                    load = _slots_load(orjson.loads(response.content))
            except (ValueError, TypeError, KeyError, AttributeError):
                load = None
            if load is not None:
                self._load_source = source
                return load
        return None

    async def _root_get(self, path: str) -> HttpReply:
        root = self.config.base_url.rstrip("/").removesuffix("/v1")
        return await self._get(f"{root}/{path}", quick=True)

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
            f"engine '{self.name}' sent a malformed event-stream line: {clip(line)}"
        )

    def _parse_chunk(self, data: str) -> ChatCompletionChunk:
        return self._parse_event(ChatCompletionChunk, data)

    def _parse_event(self, shape: type[_Event], data: str) -> _Event:
        if '"error"' not in data:
            # The common case in one pass: pydantic parses and validates the JSON together
            # (in Rust); a chunk it refuses is read again below for a precise error.
            try:
                return shape.model_validate_json(data)
            except ValidationError:
                pass
        payload = self._loads(data, "stream chunk")
        # vLLM and others report failures after the 200 as an error object in the stream.
        if isinstance(payload, dict) and (
            payload.get("error") is not None or payload.get("object") == "error"
        ):
            info = self._error_info(data.encode(), fallback="unknown error")
            raise UpstreamError(f"engine '{self.name}' failed mid-stream: {info.message}")
        return self._validate(shape, payload, "stream chunk")

    @staticmethod
    def _error_info(body: bytes, *, fallback: str) -> ErrorInfo:
        """Read an error body in the shapes OpenAI-compatible servers use."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body.decode("utf-8", errors="replace").strip()
            return ErrorInfo(clip(text) or fallback, "", None, structured=False)
        source: dict[str, Any] | None = None
        if isinstance(payload, dict):
            error = payload.get("error")
            if isinstance(error, dict):  # OpenAI, llama.cpp, LiteLLM
                source = error
            elif isinstance(error, str):  # Ollama
                return ErrorInfo(clip(error), "", None, structured=True)
            elif "message" in payload:  # older vLLM: the error object at top level
                source = payload
            elif isinstance(payload.get("detail"), str):  # FastAPI's default
                return ErrorInfo(clip(payload["detail"]), "", None, structured=False)
        if source is None:
            text = body.decode("utf-8", errors="replace").strip()
            return ErrorInfo(clip(text) or fallback, "", None, structured=False)
        param = source.get("param")
        return ErrorInfo(
            message=clip(str(source.get("message") or fallback)),
            code=f"{source.get('code') or ''} {source.get('type') or ''}".strip(),
            param=param if isinstance(param, str) else None,
            structured=True,
        )


# Gauges of vLLM (V0 and V1 names), of llama.cpp's server (with --metrics) and of
# `hearth engine`.
_RUNNING = (
    "vllm:num_requests_running",
    "llamacpp:requests_processing",
    "hearth_engine_requests_running",
)
_WAITING = (
    "vllm:num_requests_waiting",
    "llamacpp:requests_deferred",
    "hearth_engine_requests_waiting",
)
_KV_CACHE = (
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "llamacpp:kv_cache_usage_ratio",
)


def _metrics_load(text: str) -> EngineLoad | None:
    """Load from Prometheus text; None when it has none of the gauges we know."""
    sums: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # One sample per model or per data-parallel rank: requests add up, and the
            # fullest KV cache is the one that makes a new request wait.
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
            peaks[sample.name] = max(peaks.get(sample.name, 0.0), sample.value)
    running = next((sums[n] for n in _RUNNING if n in sums), None)
    waiting = next((sums[n] for n in _WAITING if n in sums), None)
    kv = next((peaks[n] for n in _KV_CACHE if n in peaks), None)
    if running is None and waiting is None:
        return None
    return EngineLoad(
        running=int(running) if running is not None else None,
        waiting=int(waiting) if waiting is not None else None,
        kv_cache_usage=kv,
    )


def _slots_load(slots: list[dict[str, Any]]) -> EngineLoad:
    """llama.cpp's /slots: `is_processing` (newer) or `state` 1 (older) per slot."""
    busy = sum(1 for slot in slots if slot.get("is_processing", slot.get("state") == 1))
    return EngineLoad(running=busy, capacity=len(slots))
