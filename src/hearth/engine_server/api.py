"""The engine server's /v1 routes: OpenAI's wire format, as the gateway's `openai` engine
adapter (and any OpenAI SDK) speaks it."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from hearth.accounts.auth import bearer_of
from hearth.engine_server.service import EngineServer
from hearth.engines.protocol import (
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelList,
)
from hearth.errors import Unauthenticated
from hearth.gateway.sse import SSE_HEADERS, sse_events
from hearth.http.replies import Streamed


async def _server(request: Request) -> EngineServer:
    """The engine server, once the caller's token is checked (when one is configured)."""
    expected: bytes | None = request.app.state.engine_token
    if expected is not None:
        given = bearer_of(request.headers.get("authorization", "")).encode()
        # Constant time: the token is the only thing between a network and the models.
        if not hmac.compare_digest(given, expected):
            raise Unauthenticated("A valid engine token is required (Authorization: Bearer).")
    return request.app.state.engine_server  # type: ignore[no-any-return]


ServerDep = Annotated[EngineServer, Depends(_server)]
router = APIRouter(prefix="/v1", tags=["engine"])


@router.get("/models")
async def list_models(server: ServerDep) -> ModelList:
    """The models this engine serves."""
    return server.list_models()


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, server: ServerDep) -> Response:
    """Create a chat completion; with `stream: true`, server-sent events chunk by chunk."""
    if not body.stream:
        result = await server.chat(body)
        return Response(result.model_dump_json(), media_type="application/json")
    chunks = await server.chat_stream(body)
    return Streamed(
        sse_events(chunks, include_usage=body.include_usage),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


@router.post("/embeddings", response_model=EmbeddingResponse)
async def embeddings(body: EmbeddingRequest, server: ServerDep) -> Response:
    """Embed a string or a list of strings."""
    result = await server.embed(body)
    return Response(result.model_dump_json(), media_type="application/json")
