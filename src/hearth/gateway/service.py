"""The gateway's logic: resolve the model, call its engine, count tokens and time.

No HTTP here: the routes in `api.py` turn these results into responses.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator

import numpy as np

from hearth.accounts.keys import Caller
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
from hearth.errors import InvalidRequest, ModelNotAllowed, RateLimited
from hearth.gateway.limits import Admission, Limiter
from hearth.gateway.routing import ModelRoutes
from hearth.observability.metrics import Metrics

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, routes: ModelRoutes, metrics: Metrics, limiter: Limiter) -> None:
        self.routes = routes
        self.metrics = metrics
        self.limiter = limiter

    def list_models(self, caller: Caller | None = None) -> ModelList:
        """The models served, or those the caller's key may use."""
        return ModelList(
            data=[
                ModelCard(id=r.model.name, owned_by=r.engine.name)
                for r in self.routes.all()
                if caller is None or caller.may_use(r.model.name)
            ]
        )

    async def admit(
        self, caller: Caller | None, model: str, estimated_tokens: int
    ) -> Admission | None:
        """Check the key may use the model and is within its limits (429 otherwise)."""
        if caller is None:
            return None
        if not caller.may_use(model):
            raise ModelNotAllowed(model)
        try:
            return await self.limiter.admit(
                [(caller.subject, caller.limits)], estimated_tokens=estimated_tokens
            )
        except RateLimited:
            self.metrics.limit_rejections.labels(model).inc()
            raise

    async def settle(self, admission: Admission | None, tokens: int) -> None:
        if admission is not None:
            try:
                await self.limiter.settle(admission, tokens=tokens, cost=0.0)
            except Exception:  # the lease frees the slot; never fail a finished request
                log.warning("could not settle limits", exc_info=True)

    async def chat(
        self, request: ChatCompletionRequest, caller: Caller | None = None
    ) -> ChatCompletion:
        """Answer a non-streaming chat completion."""
        route = self.routes.resolve(request.model, "chat")
        admission = await self.admit(caller, request.model, estimate_tokens(request))
        started = time.perf_counter()
        upstream = request.model_copy(update={"model": route.upstream, "stream": False})
        try:
            result = await route.engine.chat(upstream)
        except BaseException:
            self.metrics.generations.labels(request.model, "error").inc()
            await self.settle(admission, 0)
            raise
        await self.settle(admission, result.usage.total_tokens if result.usage else 0)
        result.model = request.model
        self.metrics.ttft.labels(request.model).observe(time.perf_counter() - started)
        self.metrics.generations.labels(request.model, "completed").inc()
        if result.usage:
            self._count(request.model, result.usage.prompt_tokens, result.usage.completion_tokens)
        return result

    async def chat_stream(
        self, request: ChatCompletionRequest, caller: Caller | None = None
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Stream a chat completion. The first chunk is produced before this returns, so an
        engine that fails up front raises here and the caller can still send an HTTP error."""
        route = self.routes.resolve(request.model, "chat")
        admission = await self.admit(caller, request.model, estimate_tokens(request))
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
            await self.settle(admission, 0)
            raise
        return self._relay(request, stream, first, started, admission)

    async def _relay(
        self,
        request: ChatCompletionRequest,
        stream: AsyncIterator[ChatCompletionChunk],
        first: ChatCompletionChunk | None,
        started: float,
        admission: Admission | None,
    ) -> AsyncIterator[ChatCompletionChunk]:
        model = request.model
        outcome, ttft_seen, usage_seen, relayed = "cancelled", False, False, 0
        used = 0
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
                    used = chunk.usage.total_tokens
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
                used = relayed
            self.metrics.generations.labels(model, outcome).inc()
            await self.settle(admission, used)

    async def embed(
        self, request: EmbeddingRequest, caller: Caller | None = None
    ) -> EmbeddingResponse:
        route = self.routes.resolve(request.model, "embedding")
        texts = request.texts
        admission = await self.admit(caller, request.model, sum(len(t) for t in texts) // 4)
        try:
            result = await route.engine.embed(route.upstream, texts)
        finally:
            await self.settle(admission, 0)
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


def estimate_tokens(request: ChatCompletionRequest) -> int:
    """Tokens a request will use, before it runs: about 4 characters a token for the
    prompt, plus its completion budget. Settling corrects it to the real count."""
    prompt = sum(len(m.text()) if isinstance(m.content, str) else 64 for m in request.messages)
    return prompt // 4 + (request.token_limit or 256)


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
