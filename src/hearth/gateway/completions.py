"""/v1/completions through the gateway: the model's deployments are asked for a text
completion with the same key checks, limits, failover (before the first byte), usage rows
and metrics as chat. An engine kind that cannot do text completions says so (400)."""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator

from hearth.accounts.keys import Caller
from hearth.engines.protocol import Completion, CompletionRequest, StreamOptions
from hearth.gateway.calls import Call, Timing, status_of
from hearth.gateway.identifiers import cache_route, end_user
from hearth.gateway.relay import abandon
from hearth.gateway.routing import Deployment
from hearth.gateway.service import Gateway

Chunks = AsyncGenerator[Completion, None]


def _estimate(request: CompletionRequest) -> tuple[int, int]:
    prompt = len(request.text) // 4  # about 4 characters a token, corrected when it ends
    return prompt, prompt + request.max_tokens


async def complete(
    gateway: Gateway, request: CompletionRequest, caller: Caller | None, timing: Timing
) -> Completion:
    served = gateway.routes.model(request.model, "chat")
    budget, user = _estimate(request)[1], end_user(request)
    call = await gateway.begin(caller, served.name, "completions", budget, timing, user)

    async def attempt(deployment: Deployment) -> Completion:
        update = {"model": deployment.upstream, "stream": False}
        return await deployment.engine.complete(request.model_copy(update=update))

    return await gateway.answer(call, served, cache_route(request), attempt)


async def complete_stream(
    gateway: Gateway, request: CompletionRequest, caller: Caller | None, timing: Timing
) -> AsyncIterator[Completion]:
    """The first chunk is awaited here, so an engine that fails up front fails over (or
    raises before any byte is sent); after it, a failure ends the stream in-band."""
    served = gateway.routes.model(request.model, "chat")
    prompt, budget = _estimate(request)
    call = await gateway.begin(
        caller, served.name, "completions", budget, timing, end_user(request)
    )
    update = {"stream": True, "stream_options": StreamOptions(include_usage=True)}

    async def attempt(deployment: Deployment) -> tuple[Chunks, Completion | None]:
        upstream = request.model_copy(update=update | {"model": deployment.upstream})
        stream: Chunks = deployment.engine.complete_stream(upstream)  # type: ignore[assignment]
        try:
            return stream, await anext(stream)
        except StopAsyncIteration:
            return stream, None
        except BaseException:
            await stream.aclose()
            raise

    try:
        stream, first = await gateway.failover.run(call, served, cache_route(request), attempt)
    except BaseException as exc:
        await call.finish(status_of(exc), "error")
        raise
    call.succeeded()
    call.timing.ready()
    call.estimate(prompt)
    relay = _relay(call, stream, first, include_usage=request.include_usage)
    weakref.finalize(relay, abandon, call, stream)  # the client left before the body
    return relay


async def _relay(
    call: Call, stream: Chunks, first: Completion | None, *, include_usage: bool
) -> AsyncIterator[Completion]:
    status, outcome = 499, "cancelled"  # the client left before the end
    prompt = completion = 0
    usage_seen = False
    clock = time.perf_counter
    try:
        chunk = first
        while chunk is not None:
            if chunk.model != call.served:
                chunk.model = call.served
            if chunk.usage is not None:
                usage_seen = True
                prompt, completion = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
            if any(choice.text for choice in chunk.choices):
                call.first_token()
                completion += not usage_seen
            if chunk.choices or include_usage:
                yield chunk
            waited = clock()
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                chunk = None
            finally:
                call.timing.upstream += clock() - waited
        status, outcome = 200, "completed"
    except Exception as exc:
        status, outcome = status_of(exc), "error"
        call.failed(exc)
        raise
    finally:
        await stream.aclose()
        await call.finish(status, outcome, prompt, completion)
