"""/v1 routes: OpenAI's wire format, so the official SDKs work unchanged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelList,
)
from hearth.errors import HearthError
from hearth.gateway.service import Gateway
from hearth.http_errors import error_body

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai"])


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@router.get("/models")
async def list_models(gateway: GatewayDep) -> ModelList:
    """The models this Hearth serves."""
    return gateway.list_models()


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, gateway: GatewayDep
) -> ChatCompletion | StreamingResponse:
    """Create a chat completion; with `stream: true`, server-sent events chunk by chunk."""
    if not body.stream:
        return await gateway.chat(body)
    chunks = await gateway.chat_stream(body)
    return StreamingResponse(
        _sse(chunks, body.include_usage), media_type="text/event-stream", headers=SSE_HEADERS
    )


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, gateway: GatewayDep) -> EmbeddingResponse:
    """Embed a string or a list of strings."""
    return await gateway.embed(body)


async def _sse(
    chunks: AsyncIterator[ChatCompletionChunk], include_usage: bool
) -> AsyncIterator[bytes]:
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
