"""The gateway's logic: resolve the model, call its engine, count tokens and time.

No HTTP here: the routes in `api.py` turn these results into responses.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator

import numpy as np

from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    StreamOptions,
)
from hearth.errors import InvalidRequest
from hearth.gateway.routing import ModelRoutes
from hearth.observability.metrics import Metrics

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, routes: ModelRoutes, metrics: Metrics) -> None:
        self.routes = routes
        self.metrics = metrics

    def list_models(self) -> ModelList:
        return ModelList(
            data=[ModelCard(id=r.model.name, owned_by=r.engine.name) for r in self.routes.all()]
        )

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        """Answer a non-streaming chat completion."""
        route = self.routes.resolve(request.model, "chat")
        started = time.perf_counter()
        upstream = request.model_copy(update={"model": route.upstream, "stream": False})
        try:
            result = await route.engine.chat(upstream)
        except BaseException:
            self.metrics.generations.labels(request.model, "error").inc()
            raise
        result.model = request.model
        self.metrics.ttft.labels(request.model).observe(time.perf_counter() - started)
        self.metrics.generations.labels(request.model, "completed").inc()
        if result.usage:
            self._count(request.model, result.usage.prompt_tokens, result.usage.completion_tokens)
        return result

    async def chat_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Stream a chat completion. The first chunk is produced before this returns, so an
        engine that fails up front raises here and the caller can still send an HTTP error."""
        route = self.routes.resolve(request.model, "chat")
        started = time.perf_counter()
        # Always ask for usage (for metrics); the route drops it if the client did not ask.
        upstream = request.model_copy(
            update={
                "model": route.upstream,
                "stream": True,
                "stream_options": StreamOptions(include_usage=True),
            }
        )
        stream = route.engine.chat_stream(upstream)
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            first = None
        except BaseException:
            self.metrics.generations.labels(request.model, "error").inc()
            await stream.aclose()
            raise
        return self._relay(request, stream, first, started)

    async def _relay(
        self,
        request: ChatCompletionRequest,
        stream: AsyncIterator[ChatCompletionChunk],
        first: ChatCompletionChunk | None,
        started: float,
    ) -> AsyncIterator[ChatCompletionChunk]:
        model = request.model
        outcome, ttft_seen, usage_seen, relayed = "cancelled", False, False, 0
        try:
            async for chunk in _prepend(first, stream):
                chunk.model = model
                has_text = any(c.delta.content for c in chunk.choices)
                if has_text and not ttft_seen:
                    ttft_seen = True
                    self.metrics.ttft.labels(model).observe(time.perf_counter() - started)
                relayed += has_text
                if chunk.usage:
                    usage_seen = True
                    self._count(model, chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                yield chunk
            outcome = "completed"
        except Exception:
            outcome = "error"
            raise
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            if not usage_seen:  # the engine reported no usage: count the chunks we relayed
                self.metrics.tokens.labels(model, "completion").inc(relayed)
            self.metrics.generations.labels(model, outcome).inc()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        route = self.routes.resolve(request.model, "embedding")
        texts = request.texts
        result = await route.engine.embed(route.upstream, texts)
        native = len(result.vectors[0])
        if request.dimensions is not None and request.dimensions != native:
            raise InvalidRequest(
                f"'{request.model}' has {native} dimensions and cannot shorten them",
                param="dimensions",
            )
        self.metrics.tokens.labels(request.model, "prompt").inc(result.prompt_tokens)
        data = [
            EmbeddingData(index=i, embedding=_encode(vector, request.encoding_format))
            for i, vector in enumerate(result.vectors)
        ]
        return EmbeddingResponse(
            data=data,
            model=request.model,
            usage=EmbeddingUsage(
                prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens
            ),
        )

    def _count(self, model: str, prompt: int, completion: int) -> None:
        self.metrics.tokens.labels(model, "prompt").inc(prompt)
        self.metrics.tokens.labels(model, "completion").inc(completion)


async def _prepend(
    first: ChatCompletionChunk | None, rest: AsyncIterator[ChatCompletionChunk]
) -> AsyncIterator[ChatCompletionChunk]:
    if first is not None:
        yield first
    async for chunk in rest:
        yield chunk


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        # What the openai SDK asks for by default: little-endian float32 bytes, base64.
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector
