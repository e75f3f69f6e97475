"""The gateway's logic: resolve the model, call its engine, count tokens and time.

No HTTP here: the routes in `api.py` turn these results into responses.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

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
from hearth.errors import HearthError, InvalidRequest, ModelNotAllowed, RateLimited
from hearth.gateway.limits import Admission, Limiter
from hearth.gateway.routing import ModelRoutes, Route
from hearth.gateway.usage import Usage, UsageRecorder
from hearth.observability.metrics import Metrics

log = logging.getLogger(__name__)


class Gateway:
    def __init__(
        self, routes: ModelRoutes, metrics: Metrics, limiter: Limiter, usage: UsageRecorder
    ) -> None:
        self.routes = routes
        self.metrics = metrics
        self.limiter = limiter
        self.usage = usage

    def list_models(self, caller: Caller | None = None) -> ModelList:
        """The models served, or those the caller's key may use."""
        return ModelList(
            data=[
                ModelCard(id=r.model.name, owned_by=r.engine.name)
                for r in self.routes.all()
                if caller is None or caller.may_use(r.model.name)
            ]
        )

    async def _begin(
        self, caller: Caller | None, route: Route, model: str, endpoint: str, estimated_tokens: int
    ) -> _Call:
        """Check the key may use the model and is within its limits (429 otherwise)."""
        admission = None
        if caller is not None:
            if not caller.may_use(model):
                raise ModelNotAllowed(model)
            try:
                admission = await self.limiter.admit(
                    [(caller.subject, caller.limits)], estimated_tokens=estimated_tokens
                )
            except RateLimited:
                self.metrics.limit_rejections.labels(model).inc()
                raise
        return _Call(self, caller, model, route.engine.name, endpoint, admission)

    async def chat(
        self, request: ChatCompletionRequest, caller: Caller | None = None
    ) -> ChatCompletion:
        """Answer a non-streaming chat completion."""
        route = self.routes.resolve(request.model, "chat")
        call = await self._begin(caller, route, request.model, "chat", estimate_tokens(request))
        upstream = request.model_copy(update={"model": route.upstream, "stream": False})
        try:
            result = await route.engine.chat(upstream)
        except BaseException as exc:
            await call.finish(_status(exc), "error")
            raise
        result.model = request.model
        call.first_token()
        usage = result.usage
        await call.finish(
            200,
            "completed",
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )
        return result

    async def chat_stream(
        self, request: ChatCompletionRequest, caller: Caller | None = None
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Stream a chat completion. The first chunk is produced before this returns, so an
        engine that fails up front raises here and the caller can still send an HTTP error."""
        route = self.routes.resolve(request.model, "chat")
        call = await self._begin(caller, route, request.model, "chat", estimate_tokens(request))
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
        except BaseException as exc:
            await stream.aclose()
            await call.finish(_status(exc), "error")
            raise
        return self._relay(call, stream, first)

    async def _relay(
        self,
        call: _Call,
        stream: AsyncIterator[ChatCompletionChunk],
        first: ChatCompletionChunk | None,
    ) -> AsyncIterator[ChatCompletionChunk]:
        # 499: the client closed the connection before the end (nginx's convention).
        status, outcome, prompt, completion, usage_seen = 499, "cancelled", 0, 0, False
        try:
            async for chunk in _prepend(first, stream):
                chunk.model = call.model
                if any(c.delta.content for c in chunk.choices):
                    call.first_token()
                    completion += not usage_seen
                if chunk.usage:
                    usage_seen = True
                    prompt, completion = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                yield chunk
            status, outcome = 200, "completed"
        except Exception as exc:
            status, outcome = _status(exc), "error"
            raise
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            await call.finish(status, outcome, prompt, completion)

    async def embed(
        self, request: EmbeddingRequest, caller: Caller | None = None
    ) -> EmbeddingResponse:
        route = self.routes.resolve(request.model, "embedding")
        texts = request.texts
        call = await self._begin(
            caller, route, request.model, "embeddings", sum(len(t) for t in texts) // 4
        )
        try:
            result = await route.engine.embed(route.upstream, texts)
            native = len(result.vectors[0])
            if request.dimensions is not None and request.dimensions != native:
                raise InvalidRequest(
                    f"'{request.model}' has {native} dimensions and cannot shorten them",
                    param="dimensions",
                )
        except BaseException as exc:
            await call.finish(_status(exc), None)
            raise
        await call.finish(200, None, result.prompt_tokens, 0)
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


@dataclass
class _Call:
    """One /v1 request in flight: what it needs to settle its limits, record its usage and
    update the metrics once, however it ends."""

    gateway: Gateway
    caller: Caller | None
    model: str
    deployment: str
    endpoint: str
    admission: Admission | None
    started: float = field(default_factory=time.perf_counter)
    ttft: float | None = None

    def first_token(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.started
            self.gateway.metrics.ttft.labels(self.model).observe(self.ttft)

    async def finish(
        self, status: int, outcome: str | None, prompt: int = 0, completion: int = 0
    ) -> None:
        gateway = self.gateway
        if self.admission is not None:
            try:
                await gateway.limiter.settle(self.admission, tokens=prompt + completion, cost=0.0)
            except Exception:  # the lease frees the slot; never fail a finished request
                log.warning("could not settle limits", exc_info=True)
        gateway.metrics.tokens.labels(self.model, "prompt").inc(prompt)
        gateway.metrics.tokens.labels(self.model, "completion").inc(completion)
        if outcome is not None:
            gateway.metrics.generations.labels(self.model, outcome).inc()
        gateway.usage.record(
            Usage(
                model=self.model,
                deployment=self.deployment,
                endpoint=self.endpoint,
                status=status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                latency_ms=(time.perf_counter() - self.started) * 1000,
                ttft_ms=self.ttft * 1000 if self.ttft is not None else None,
                key_id=self.caller.key_id if self.caller else None,
                owner_id=self.caller.principal.user_id if self.caller else None,
            )
        )


def _status(exc: BaseException) -> int:
    return (
        exc.status
        if isinstance(exc, HearthError)
        else 499
        if isinstance(exc, asyncio.CancelledError)
        else 500
    )


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
