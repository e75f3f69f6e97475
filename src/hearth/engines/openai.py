"""Adapter for any OpenAI-compatible server (vLLM, llama.cpp's server, LiteLLM, hosted APIs).

Requests pass through as the client sent them (unknown fields included); replies are
validated into our protocol models, so a broken upstream shows up as `UpstreamError` here
rather than as a confusing failure further down the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from hearth.config import OpenAIEngineConfig
from hearth.engines._http import ErrorInfo, HttpEngine, clip
from hearth.engines.base import Embeddings
from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingResponse,
)
from hearth.errors import UpstreamError

_SSE_IGNORED_FIELDS = frozenset({"event", "id", "retry"})


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
        body = await self._post_json("chat/completions", payload, model=request.model)
        return self._validate(ChatCompletion, body, "chat completion")

    async def chat_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        payload = request.model_dump(exclude_none=True)
        payload["stream"] = True
        async with self._stream(
            "chat/completions", payload, accept="text/event-stream", model=request.model
        ) as response:
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
        payload = self._loads(data, "stream chunk")
        # vLLM and others report failures after the 200 as an error object in the stream.
        if isinstance(payload, dict) and (
            payload.get("error") is not None or payload.get("object") == "error"
        ):
            info = self._error_info(data.encode(), fallback="unknown error")
            raise UpstreamError(f"engine '{self.name}' failed mid-stream: {info.message}")
        return self._validate(ChatCompletionChunk, payload, "stream chunk")

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
