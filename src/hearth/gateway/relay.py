"""Relaying a stream from an engine to a client: its chunks in lists of those that arrived
together (written at once downstream, never held back for more), and what they tell as
they pass (first token, token counts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from hearth.engines.base import Engine
from hearth.engines.protocol import ChatCompletionChunk, ChatCompletionRequest
from hearth.gateway.calls import Call

Batches = AsyncGenerator[list[ChatCompletionChunk], None]


class Tokens:
    """What a relayed stream tells as it passes: its first token (TTFT) and its token
    counts, from the usage chunk when the engine sends one, else one per content chunk."""

    __slots__ = ("call", "completion", "prompt", "served", "usage_seen")

    def __init__(self, call: Call) -> None:
        self.call, self.served = call, call.served
        self.prompt, self.completion, self.usage_seen = 0, 0, False

    def count(self, batch: list[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
        served = self.served
        for chunk in batch:
            if chunk.model != served:  # assigning runs pydantic's __setattr__: only if needed
                chunk.model = served
            for choice in chunk.choices:
                if choice.delta.content:
                    self.call.first_token()
                    self.completion += not self.usage_seen
                    break
            if chunk.usage:
                self.usage_seen = True
                self.prompt = chunk.usage.prompt_tokens
                self.completion = chunk.usage.completion_tokens
        return batch


def batches(engine: Engine, request: ChatCompletionRequest) -> Batches:
    """The engine's stream in lists of chunks that arrived together: its own, when it can
    tell (`chat_stream_batches`, the HTTP engines), else one chunk a list."""
    batched = getattr(engine, "chat_stream_batches", None)
    if batched is not None:
        return batched(request)  # type: ignore[no-any-return]
    return _one_by_one(engine.chat_stream(request))


async def _one_by_one(stream: AsyncIterator[ChatCompletionChunk]) -> Batches:
    try:
        async for chunk in stream:
            yield [chunk]
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def flatten(
    batches: AsyncIterator[list[ChatCompletionChunk]],
) -> AsyncIterator[ChatCompletionChunk]:
    try:
        async for batch in batches:
            for chunk in batch:
                yield chunk
    finally:
        await batches.aclose()  # type: ignore[attr-defined]


def abandon(call: Call, stream: Batches) -> None:
    if call.finished:
        return
    call.detach()  # at once, synchronously: the balancer must not count it any longer
    call.abandoned()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # the loop is gone (shutdown): nothing left to settle or record

    async def close() -> None:
        await stream.aclose()
        await call.finish(499, "cancelled")

    call.gateway.spawn(close())
