"""Server-sent events in OpenAI's streaming format."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from hearth.engines.protocol import ChatCompletionChunk
from hearth.errors import HearthError
from hearth.http_errors import error_body

log = logging.getLogger(__name__)

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def sse_events(
    chunks: AsyncIterator[ChatCompletionChunk], *, include_usage: bool
) -> AsyncIterator[bytes]:
    """Chunks as server-sent events, OpenAI style: `data: {...}` each, `data: [DONE]` last."""
    try:
        async for chunk in chunks:
            if chunk.usage and not include_usage and not chunk.choices:
                continue
            yield b"data: " + chunk.model_dump_json().encode() + b"\n\n"
    except HearthError as exc:
        # Headers are gone already: report in-band, as OpenAI does, then end the stream.
        log.warning("stream failed after it started: %s", exc.message)
        yield b"data: " + error_body(exc) + b"\n\n"
        return
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    yield b"data: [DONE]\n\n"
