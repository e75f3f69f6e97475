"""/v1 routes: OpenAI's wire format, so the official SDKs work unchanged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from hearth.accounts.api import KeyCallerDep
from hearth.accounts.principal import LOCAL_USER
from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelList,
)
from hearth.gateway.service import Gateway
from hearth.gateway.sse import SSE_HEADERS, sse_events

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai"])


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]


@router.get("/models")
async def list_models(gateway: GatewayDep, caller: KeyCallerDep) -> ModelList:
    """The models this Hearth serves (to this key)."""
    return gateway.list_models(caller)


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, gateway: GatewayDep, caller: KeyCallerDep
) -> ChatCompletion | StreamingResponse:
    """Create a chat completion; with `stream: true`, server-sent events chunk by chunk.

    Extension: `"hearth": {"collections": ["<id>", ...], "k": 5}` answers from those
    document collections; the passages used come back as `citations` (in the response, or
    in the first chunk when streaming)."""
    citations = None
    if body.model_extra and "hearth" in body.model_extra:
        principal = caller.principal if caller else LOCAL_USER
        body, found = await request.app.state.answerer.attach(principal, body)
        citations = [c.model_dump(mode="json") for c in found]
    if not body.stream:
        result = await gateway.chat(body, caller)
        if citations is not None:
            result.citations = citations  # type: ignore[attr-defined]
        return result
    chunks = await gateway.chat_stream(body, caller)
    if citations is not None:
        chunks = _with_citations(chunks, citations)
    return StreamingResponse(
        sse_events(chunks, include_usage=body.include_usage),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


async def _with_citations(
    chunks: AsyncIterator[ChatCompletionChunk], citations: list[dict]
) -> AsyncIterator[ChatCompletionChunk]:
    first = True
    try:
        async for chunk in chunks:
            if first:
                chunk.citations = citations  # type: ignore[attr-defined]
                first = False
            yield chunk
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


@router.post("/embeddings")
async def embeddings(
    body: EmbeddingRequest, gateway: GatewayDep, caller: KeyCallerDep
) -> EmbeddingResponse:
    """Embed a string or a list of strings."""
    return await gateway.embed(body, caller)
