"""/v1 routes: OpenAI's wire format, so the official SDKs work unchanged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from hearth.accounts.api import KeyCallerDep
from hearth.accounts.keys import Caller
from hearth.accounts.principal import LOCAL_USER
from hearth.engines.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelList,
)
from hearth.gateway.cache import CACHE_HEADER
from hearth.gateway.calls import Timing
from hearth.gateway.service import Gateway
from hearth.gateway.sse import SSE_HEADERS, sse_events

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai"])

# Milliseconds Hearth spent on the request besides waiting for engines (see `Timing`).
OVERHEAD_HEADER = "x-hearth-overhead-ms"


async def _gateway(request: Request) -> Gateway:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off
    # per request that cost more than everything else on the hot path.
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]


@router.get("/models")
async def list_models(gateway: GatewayDep, caller: KeyCallerDep) -> ModelList:
    """The models this Hearth serves (to this key)."""
    return gateway.list_models(caller)


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, gateway: GatewayDep, caller: KeyCallerDep
) -> Response:
    """Create a chat completion; with `stream: true`, server-sent events chunk by chunk.

    Extension: `"hearth": {"collections": ["<id>", ...], "k": 5}` answers from those
    document collections; the passages used come back as `citations` (in the response, or
    in the first chunk when streaming)."""
    citations = None
    if body.model_extra and "hearth" in body.model_extra:
        principal = caller.principal if caller else LOCAL_USER
        body, found = await request.app.state.answerer.attach(principal, body)
        citations = [c.model_dump(mode="json") for c in found]
    timing = _timing(request)
    session = _session(request)
    if not body.stream:
        cache = _use_cache(request, caller)
        result = await gateway.chat(body, caller, session=session, timing=timing, cache=cache)
        if citations is not None:
            result.citations = citations  # type: ignore[attr-defined]
        response = _json(result, timing)
        if cache:
            response.headers[CACHE_HEADER] = "hit" if timing.cached else "miss"
        return response
    chunks = await gateway.chat_stream(body, caller, session=session, timing=timing)
    if citations is not None:
        chunks = _with_citations(chunks, citations)
    return StreamingResponse(
        sse_events(chunks, include_usage=body.include_usage),
        media_type="text/event-stream",
        headers={**SSE_HEADERS, OVERHEAD_HEADER: _ms(timing)},
    )


def _use_cache(request: Request, caller: Caller | None) -> bool:
    """The response cache is opt-in: the key's setting, or `X-Hearth-Cache: use`; a request
    can also refuse it with `X-Hearth-Cache: no`."""
    asked = request.headers.get(CACHE_HEADER, "").lower()
    if asked in ("no", "off", "bypass"):
        return False
    return asked == "use" or bool(caller and caller.cache_responses)


def _timing(request: Request) -> Timing:
    arrived = request.scope.get("state", {}).get("hearth_arrived")
    return Timing(arrived=arrived) if arrived is not None else Timing()


def _session(request: Request) -> str | None:
    header = request.app.state.settings.session_affinity_header
    return request.headers.get(header) if header else None


def _ms(timing: Timing) -> str:
    return f"{timing.ready() * 1000:.2f}"


def _json(result: BaseModel, timing: Timing) -> Response:
    return Response(
        result.model_dump_json(),
        media_type="application/json",
        headers={OVERHEAD_HEADER: _ms(timing)},
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


@router.post("/embeddings", response_model=EmbeddingResponse)
async def embeddings(
    body: EmbeddingRequest, request: Request, gateway: GatewayDep, caller: KeyCallerDep
) -> Response:
    """Embed a string or a list of strings."""
    timing = _timing(request)
    result = await gateway.embed(body, caller, timing=timing)
    return _json(result, timing)
