"""The gateway's logic: resolve the model, pick a deployment (failing over to others and
to fallback models before the first byte reaches the client), count tokens, time and cost.

No HTTP here: the routes in `api.py` turn these results into responses.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from hearth.accounts.keys import Caller
from hearth.config import Settings
from hearth.engines.base import Embeddings
from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    ModelList,
    StreamOptions,
    embedding_response,
)
from hearth.errors import (
    InvalidRequest,
    ModelNotAllowed,
    ModelNotFound,
    RateLimited,
)
from hearth.gateway.balancer import Balancer, DeploymentCollector
from hearth.gateway.cache import LocalResponseCache, RedisResponseCache, ResponseCache, cache_key
from hearth.gateway.calls import Call, Timing, status_of
from hearth.gateway.failover import RETRY_BACKOFF, Failover
from hearth.gateway.health import Health, HealthChecker
from hearth.gateway.identifiers import cache_route, end_user
from hearth.gateway.inflight import InFlight, SharedInFlight
from hearth.gateway.limits import Limiter
from hearth.gateway.relay import Batches, Tokens, abandon, batches, flatten
from hearth.gateway.routing import Deployment, ModelRoutes, ServedModel
from hearth.gateway.usage import UsageRecorder
from hearth.gateway.vision import refuse_images
from hearth.observability.metrics import Metrics

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
_Answer = TypeVar("_Answer", ChatCompletion, Completion)


class Gateway:
    def __init__(
        self,
        routes: ModelRoutes,
        metrics: Metrics,
        limiter: Limiter,
        usage: UsageRecorder,
        balancer: Balancer | None = None,
        *,
        retries: int = 2,
        retry_backoff: float = RETRY_BACKOFF,
        health_interval: float = 0.0,
        cache: ResponseCache | None = None,
    ) -> None:
        self.routes = routes
        self.cache = cache or LocalResponseCache(ttl=3600)
        self.metrics = metrics
        self.limiter = limiter
        self.usage = usage
        self.balancer = balancer or Balancer(Health(failures=5, cooldown=10.0), InFlight())
        self.failover = Failover(
            routes, self.balancer, metrics, retries=retries, retry_backoff=retry_backoff
        )
        self.checker = HealthChecker(self.balancer.health, routes, health_interval)
        metrics.registry.register(DeploymentCollector(routes, self.balancer))
        self._spawned: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the background work: health probes, in-flight sync. Engines must be up."""
        self.checker.start()
        self.balancer.in_flight.start()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` on its own (bookkeeping after a response), held until it is done."""
        task = asyncio.create_task(work)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def close(self) -> None:
        if self._spawned:
            await asyncio.gather(*self._spawned, return_exceptions=True)
        await self.checker.close()
        await self.balancer.in_flight.close()
        await self.cache.close()

    def list_models(self, caller: Caller | None = None) -> ModelList:
        """The models served, or those the caller's key may use."""
        return ModelList(
            data=[
                self.model_card(m.name)
                for m in self.routes.models()
                if caller is None or caller.may_use(m.name)
            ]
        )

    def model_card(self, name: str, caller: Caller | None = None) -> ModelCard:
        """One model as `list_models` shows it; ModelNotFound if it is not served, or not
        to this caller's key (as OpenAI answers for a model a key cannot see)."""
        model = self.routes.find(name)
        if model is None or (caller is not None and not caller.may_use(name)):
            raise ModelNotFound(name)
        return ModelCard(id=model.name, owned_by=model.deployments[0].engine.name)

    async def begin(
        self,
        caller: Caller | None,
        model: str,
        endpoint: str,
        estimated_tokens: int,
        timing: Timing | None,
        end_user: str | None = None,
    ) -> Call:
        """Check the key may use the model and is within its limits (429 otherwise)."""
        admission = None
        if caller is not None:
            if not caller.may_use(model):
                raise ModelNotAllowed(model)
            try:
                admission = await self.limiter.admit(
                    caller.limit_subjects, estimated_tokens=estimated_tokens
                )
            except RateLimited as exc:
                self.metrics.limit_rejections.labels(model, exc.limit or "").inc()
                raise
        call = Call(self, caller, model, endpoint, admission, timing or Timing())
        call.end_user = end_user
        return call

    async def chat(
        self,
        request: ChatCompletionRequest,
        caller: Caller | None = None,
        *,
        session: str | None = None,
        timing: Timing | None = None,
        cache: bool = False,
    ) -> ChatCompletion:
        """Answer a non-streaming chat completion, failing over between deployments. With
        `cache`, an identical earlier answer (temperature 0) is returned if there is one."""
        served = self.routes.model(request.model, "chat")
        refuse_images(self.routes, request)
        user = end_user(request)
        call = await self.begin(caller, served.name, "chat", estimate_tokens(request), timing, user)
        session = session or cache_route(request)
        key = cache_key(caller.principal.user_id if caller else "", request) if cache else None
        if key is not None:
            hit = await self._cached(call, key)
            if hit is not None:
                return hit

        async def attempt(deployment: Deployment) -> ChatCompletion:
            update = {"model": deployment.upstream, "stream": False}
            return await deployment.engine.chat(request.model_copy(update=update))

        result = await self.answer(call, served, session, attempt)
        if key is not None:
            try:
                await self.cache.put(key, result.model_dump_json().encode())
            except Exception as exc:  # a cache that is away costs a miss, not the answer
                log.warning("could not cache a response: %s", exc)
        return result

    async def answer(
        self,
        call: Call,
        served: ServedModel,
        session: str | None,
        attempt: Callable[[Deployment], Awaitable[_Answer]],
    ) -> _Answer:
        """A whole (non-streaming) answer from the first deployment that gives one, its
        model the name served and its usage recorded; a failure is recorded and raised."""
        try:
            result = await self.failover.run(call, served, session, attempt)
        except BaseException as exc:
            await call.finish(status_of(exc), "error")
            raise
        call.succeeded()
        result.model = call.served
        call.first_token()
        usage = result.usage
        call.finish_soon(
            200,
            "completed",
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )
        return result

    async def _cached(self, call: Call, key: str) -> ChatCompletion | None:
        """The cached answer, recorded as a request that cost no tokens, or None."""
        try:
            found = await self.cache.get(key)
        except Exception as exc:
            log.warning("response cache unavailable: %s", exc)
            return None
        self.metrics.cache_lookups.labels(call.model, "hit" if found else "miss").inc()
        if found is None:
            return None
        call.label = "cache"
        call.first_token()
        await call.finish(200, "cached")
        call.timing.cached = True
        return ChatCompletion.model_validate_json(found)

    async def chat_stream(
        self,
        request: ChatCompletionRequest,
        caller: Caller | None = None,
        *,
        session: str | None = None,
        timing: Timing | None = None,
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Stream a chat completion. The first chunk is produced before this returns, so an
        engine that fails up front raises here and the caller can still send an HTTP error;
        until then a failure fails over to another deployment, never after."""
        batches = await self.chat_stream_batches(request, caller, session=session, timing=timing)
        return flatten(batches)

    async def chat_stream_batches(
        self,
        request: ChatCompletionRequest,
        caller: Caller | None = None,
        *,
        session: str | None = None,
        timing: Timing | None = None,
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        """`chat_stream`, its chunks in lists of those that arrived together (one each when
        the engine sends them apart), for a relay that writes each list at once."""
        served = self.routes.model(request.model, "chat")
        refuse_images(self.routes, request)
        user = end_user(request)
        call = await self.begin(caller, served.name, "chat", estimate_tokens(request), timing, user)
        session = session or cache_route(request)
        # Always ask for usage (for metrics); the route drops it if the client did not ask.
        update = {"stream": True, "stream_options": StreamOptions(include_usage=True)}

        async def attempt(deployment: Deployment) -> tuple[Batches, list[ChatCompletionChunk]]:
            upstream = request.model_copy(update=update | {"model": deployment.upstream})
            stream = batches(deployment.engine, upstream)
            try:
                return stream, await anext(stream)
            except StopAsyncIteration:
                return stream, []
            except BaseException:
                await stream.aclose()
                raise

        try:
            stream, first = await self.failover.run(call, served, session, attempt)
        except BaseException as exc:
            await call.finish(status_of(exc), "error")
            raise
        call.succeeded()  # it answered; a break from now on counts against it again
        call.timing.ready()
        call.estimate(estimate_prompt_tokens(request))  # what a crash mid-stream leaves
        relay = self._relay(call, stream, first)
        # A response whose client left before its body started never runs the relay, so
        # its `finally` would not free the deployment's slot: its collection does.
        weakref.finalize(relay, abandon, call, stream)
        return relay

    async def _relay(
        self, call: Call, stream: Batches, first: list[ChatCompletionChunk]
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        # 499: the client closed the connection before the end (nginx's convention).
        status, outcome = 499, "cancelled"
        tokens = Tokens(call)
        timing, clock = call.timing, time.perf_counter
        try:
            if first:
                yield tokens.count(first)
                while True:
                    # Waiting for the engine's next chunks: not time Hearth added.
                    waited = clock()
                    try:
                        batch = await anext(stream)
                    except StopAsyncIteration:
                        break
                    finally:
                        timing.upstream += clock() - waited
                    yield tokens.count(batch)
            status, outcome = 200, "completed"
        except Exception as exc:
            status, outcome = status_of(exc), "error"
            # Never retried: the client has part of the answer already.
            call.failed(exc)
            raise
        finally:
            await stream.aclose()
            await call.finish(status, outcome, tokens.prompt, tokens.completion)

    async def embed(
        self,
        request: EmbeddingRequest,
        caller: Caller | None = None,
        *,
        timing: Timing | None = None,
    ) -> EmbeddingResponse:
        result, served = await self.embed_texts(
            request.model,
            request.texts,
            caller,
            timing=timing,
            dimensions=request.dimensions,
            end_user=end_user(request),
        )
        return embedding_response(
            result.vectors, served, result.prompt_tokens, request.encoding_format
        )

    async def embed_texts(
        self,
        model: str,
        texts: list[str],
        caller: Caller | None = None,
        *,
        endpoint: str = "embeddings",
        timing: Timing | None = None,
        dimensions: int | None = None,
        end_user: str | None = None,
    ) -> tuple[Embeddings, str]:
        """Vectors for `texts` from the model's best deployment, failing over like chat;
        with the model that answered (a fallback's name, perhaps). Hearth's own callers
        (retrieval: `endpoint` "documents" or "search") pass no key and are recorded in
        usage as such."""
        served = self.routes.model(model, "embedding")
        call = await self.begin(
            caller, served.name, endpoint, sum(len(t) for t in texts) // 4, timing, end_user
        )

        async def attempt(deployment: Deployment) -> Embeddings:
            return await deployment.engine.embed(deployment.upstream, texts)

        try:
            result = await self.failover.run(call, served, None, attempt)
            call.succeeded()
            native = len(result.vectors[0])
            if dimensions is not None and dimensions != native:
                raise InvalidRequest(
                    f"'{model}' has {native} dimensions and cannot shorten them",
                    param="dimensions",
                )
        except BaseException as exc:
            await call.finish(status_of(exc), None)
            raise
        await call.finish(200, None, result.prompt_tokens, 0)
        return result, call.served


def estimate_tokens(request: ChatCompletionRequest) -> int:
    """Tokens a request will use, before it runs: its prompt's, plus its completion
    budget. Settling corrects it to the real count."""
    return estimate_prompt_tokens(request) + (request.token_limit or 256)


def estimate_prompt_tokens(request: ChatCompletionRequest) -> int:
    """About 4 characters a token (64 for a part that is not text)."""
    return sum(len(m.text()) if isinstance(m.content, str) else 64 for m in request.messages) // 4


def build_gateway(
    settings: Settings,
    routes: ModelRoutes,
    metrics: Metrics,
    limiter: Limiter,
    usage: UsageRecorder,
) -> Gateway:
    """The gateway as the settings describe it: in-flight counts shared through Redis when
    there is one, breakers and probes as configured."""
    health = Health(
        failures=settings.circuit_breaker_failures, cooldown=settings.circuit_breaker_cooldown
    )
    in_flight = InFlight()
    cache: ResponseCache = LocalResponseCache(ttl=settings.response_cache_ttl)
    if settings.redis_url is not None:
        in_flight = SharedInFlight(redis_client(settings))
        cache = RedisResponseCache(redis_client(settings), ttl=settings.response_cache_ttl)
    return Gateway(
        routes,
        metrics,
        limiter,
        usage,
        Balancer(health, in_flight),
        retries=settings.gateway_retries,
        health_interval=settings.health_check_interval,
        cache=cache,
    )


def redis_client(settings: Settings) -> Redis:
    """A client of the configured Redis whose every command and connection gives up after
    `redis_timeout`: a frozen Redis must fail requests quickly, never hang them."""
    from redis.asyncio import Redis

    assert settings.redis_url is not None
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
    )
