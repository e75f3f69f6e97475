"""Server-sent events in OpenAI's streaming format."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from hearth.engines.protocol import ChatCompletionChunk
from hearth.errors import HearthError
from hearth.http.errors import error_body

log = logging.getLogger(__name__)

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def sse_events(
    chunks: AsyncIterator[ChatCompletionChunk], *, include_usage: bool
) -> AsyncIterator[bytes]:
    """Chunks as server-sent events, OpenAI style: `data: {...}` each, `data: [DONE]` last."""
    async for piece in sse_event_batches(_one_by_one(chunks), include_usage=include_usage):
        yield piece


async def _one_by_one(
    chunks: AsyncIterator[ChatCompletionChunk],
) -> AsyncIterator[list[ChatCompletionChunk]]:
    try:
        async for chunk in chunks:
            yield [chunk]
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def sse_event_batches(
    batches: AsyncIterator[list[ChatCompletionChunk]], *, include_usage: bool
) -> AsyncIterator[bytes]:
    """`sse_events` for chunks in lists of those that arrived together: each list goes out
    as one piece, so in one write, and a chunk is never held back waiting for another."""
    try:
        async for batch in batches:
            events = [
                _event(chunk)
                for chunk in batch
                if include_usage or not chunk.usage or chunk.choices
            ]
            if events:
                yield events[0] if len(events) == 1 else b"".join(events)
    except HearthError as exc:
        yield _failed(exc)
        return
    finally:
        await batches.aclose()  # type: ignore[attr-defined]
    yield DONE


DONE = b"data: [DONE]\n\n"


def _event(chunk: ChatCompletionChunk) -> bytes:
    return b"data: " + chunk.model_dump_json().encode() + b"\n\n"


def _failed(exc: HearthError) -> bytes:
    # Headers are gone already: report in-band, as OpenAI does, then end the stream.
    log.warning("stream failed after it started: %s", exc.message)
    return b"data: " + error_body(exc) + b"\n\n"
