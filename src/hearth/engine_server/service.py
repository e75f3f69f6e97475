"""What `hearth engine` does with a request, without HTTP: find the model's local engine,
admit the request into the model's bounded queue, run it, count it.

There is no gateway here (keys, limits, balancing and usage belong to `hearth serve`, which
calls this server): a model name is one local engine, and a request either runs or, when
the model's queue is full, is refused at once with 503 and Retry-After, so the gateway
tries another replica instead of piling requests onto a busy one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from hearth.engine_server.metrics import EngineMetrics, status_of
from hearth.engines.base import EngineLoad
from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    ModelList,
    StreamOptions,
    embedding_response,
)
from hearth.errors import EngineBusy, InvalidRequest, ModelNotFound
from hearth.gateway.routing import Deployment, ModelRoutes

# Local engines only: proxying to other servers is the gateway's job, not this one's.
LOCAL_KINDS = ("llamacpp", "embedder")


class EngineServer:
    def __init__(self, routes: ModelRoutes, metrics: EngineMetrics, *, max_waiting: int) -> None:
        self.routes = routes
        self.metrics = metrics
        self.max_waiting = max_waiting
        self._in_flight: dict[str, int] = {}
        metrics.watch(self)

    def list_models(self) -> ModelList:
        return ModelList(
            data=[
                ModelCard(id=m.name, owned_by=m.deployments[0].engine.name)
                for m in self.routes.models()
            ]
        )

    def load(self, model: str) -> EngineLoad:
        """Requests running and waiting for `model`: as the engine itself reports them where
        it can (llama.cpp), else from this server's count of requests in flight."""
        served = self.routes.find(model)
        if served is None:
            raise ModelNotFound(model)
        deployment = served.deployments[0]
        load_of = getattr(deployment.engine, "load_of", None)
        if load_of is not None:
            return load_of(deployment.upstream)  # type: ignore[no-any-return]
        slots = _slots(deployment)
        in_flight = self._in_flight.get(model, 0)
        return EngineLoad(
            running=min(in_flight, slots), waiting=max(0, in_flight - slots), capacity=slots
        )

    def stats(self, model: str) -> tuple[float, int, int] | None:
        """Tokens/s, prompt tokens and prompt-cache hits, where the engine counts them."""
        served = self.routes.find(model)
        if served is None:
            return None
        deployment = served.deployments[0]
        stats_of = getattr(deployment.engine, "stats_of", None)
        return None if stats_of is None else stats_of(deployment.upstream)  # type: ignore[no-any-return]

    def _admit(self, deployment: Deployment) -> None:
        name = deployment.model.name
        in_flight = self._in_flight.get(name, 0)
        if in_flight >= _slots(deployment) + self.max_waiting:
            self.metrics.rejected.labels(name).inc()
            raise EngineBusy(
                f"model '{name}' has {in_flight} requests running or waiting; try again shortly"
            )
        self._in_flight[name] = in_flight + 1

    def _release(self, deployment: Deployment) -> None:
        self._in_flight[deployment.model.name] -= 1

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        deployment = self._chat_deployment(request)
        with self.metrics.outcome(request.model, "chat"):
            self._admit(deployment)
            started = time.perf_counter()
            try:
                result = await deployment.engine.chat(_upstream(request, deployment))
            finally:
                self._release(deployment)
        result.model = request.model
        self.metrics.finished(request.model, started, result.usage)
        return result

    async def chat_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        """The stream, its first chunk already produced: a request that fails up front
        (unknown model, prompt too long, queue full) raises here, before any header."""
        with self.metrics.outcome(request.model, "chat"):
            deployment = self._chat_deployment(request)
            self._admit(deployment)
        started = time.perf_counter()
        # Usage is always asked of the engine, for the token counters; passed on only if
        # the client asked for it.
        upstream = _upstream(request, deployment).model_copy(
            update={"stream_options": StreamOptions(include_usage=True)}
        )
        chunks = deployment.engine.chat_stream(upstream)
        try:
            first = await anext(chunks)
        except BaseException as exc:
            self._release(deployment)
            self.metrics.requests.labels(request.model, "chat", status_of(exc)).inc()
            await chunks.aclose()  # type: ignore[attr-defined]
            raise
        self.metrics.first_token(request.model, started)
        return self._relay(request, deployment, first, chunks, started)

    async def _relay(
        self,
        request: ChatCompletionRequest,
        deployment: Deployment,
        first: ChatCompletionChunk,
        chunks: AsyncIterator[ChatCompletionChunk],
        started: float,
    ) -> AsyncIterator[ChatCompletionChunk]:
        status, usage = "499", None  # the client left, unless the stream ends or fails
        try:
            first.model = request.model
            yield first
            async for chunk in chunks:
                if chunk.usage is not None:
                    usage = chunk.usage
                    if not request.include_usage:
                        continue
                chunk.model = request.model
                yield chunk
            status = "200"
        except Exception as exc:
            status = status_of(exc)
            raise
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
            self._release(deployment)
            self.metrics.requests.labels(request.model, "chat", status).inc()
            self.metrics.finished(request.model, started, usage)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        with self.metrics.outcome(request.model, "embeddings"):
            deployment = self.routes.resolve(request.model, "embedding")
            self._admit(deployment)
            try:
                result = await deployment.engine.embed(deployment.upstream, request.texts)
            finally:
                self._release(deployment)
            native = len(result.vectors[0])
            if request.dimensions is not None and request.dimensions != native:
                raise InvalidRequest(
                    f"'{request.model}' has {native} dimensions and cannot shorten them",
                    param="dimensions",
                )
        self.metrics.prompt_tokens.labels(request.model).inc(result.prompt_tokens)
        return embedding_response(
            result.vectors, request.model, result.prompt_tokens, request.encoding_format
        )

    def _chat_deployment(self, request: ChatCompletionRequest) -> Deployment:
        # Fields beyond the common ones reach the engine, which honours them or refuses
        # them by name (hearth.engines.llamacpp.refuse_unsupported), as in `hearth up`.
        return self.routes.resolve(request.model, "chat")


def _upstream(request: ChatCompletionRequest, deployment: Deployment) -> ChatCompletionRequest:
    return request.model_copy(update={"model": deployment.upstream})


def _slots(deployment: Deployment) -> int:
    """Requests the deployment's engine generates at once for its model: what the engine
    reports (llama.cpp: its slots), else its `slots` attribute, else one."""
    load_of = getattr(deployment.engine, "load_of", None)
    if load_of is not None:
        capacity = load_of(deployment.upstream).capacity
        if capacity:
            return int(capacity)
    return int(getattr(deployment.engine, "slots", 1))
