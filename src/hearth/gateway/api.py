"""/v1 routes: OpenAI's wire format, so the official SDKs work unchanged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Receive, Scope

from hearth.accounts.api import KeyCallerDep, key_caller_for
from hearth.accounts.auth import bearer_of
from hearth.accounts.keys import Caller
from hearth.accounts.principal import LOCAL_USER
from hearth.engines.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    ModelList,
)
from hearth.errors import InvalidRequest, NotFound, Unauthenticated
from hearth.gateway import completions as text_completions
from hearth.gateway.cache import CACHE_HEADER
from hearth.gateway.calls import Timing
from hearth.gateway.responses import ResponseCreate, Responses
from hearth.gateway.service import Gateway
from hearth.gateway.sse import SSE_HEADERS, sse_event_batches, sse_events
from hearth.http.hot_path import HotRoute
from hearth.http.replies import EventStream, JsonReply
from hearth.http.stamps import ON_END, RECEIVED

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
router = APIRouter(prefix="/v1", tags=["openai"])

# Milliseconds Hearth spent on the request from its first byte read to the response's head,
# less the time waiting for engines (`Timing.overhead`). The whole time Hearth added, to the
# last byte written, is only known after the head has gone: hearth_gateway_added_seconds.
OVERHEAD_HEADER = "x-hearth-overhead-ms"
_OVERHEAD = OVERHEAD_HEADER.encode()
_CACHE = CACHE_HEADER.lower().encode()
_SSE_HEADERS = [(name.encode(), value.encode()) for name, value in SSE_HEADERS.items()]


async def _gateway(request: Request) -> Gateway:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off
    # per request that cost more than everything else on the hot path.
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]


@router.get("/models")
async def list_models(gateway: GatewayDep, caller: KeyCallerDep) -> ModelList:
    """The models this Hearth serves (to this key)."""
    return gateway.list_models(caller)


@router.get("/models/{model:path}")
async def retrieve_model(model: str, gateway: GatewayDep, caller: KeyCallerDep) -> ModelCard:
    """One model, if this Hearth serves it (to this key); 404 otherwise."""
    return gateway.model_card(model, caller)


async def _attach(
    answerer: Any, caller: Caller | None, body: ChatCompletionRequest
) -> tuple[ChatCompletionRequest, list[Any]]:
    """Ground the request in its `hearth.collections`, as the key's owner. Without a key
    (allowed on loopback), only the local user's collections can be read: another's is a
    401 saying a key is needed, not a bare 404."""
    try:
        return await answerer.attach(caller.principal if caller else LOCAL_USER, body)
    except NotFound as exc:
        if caller is not None or exc.param != "hearth.collections":
            raise
        raise Unauthenticated(
            f"{exc.message}: without an API key only the local user's collections can be "
            "read; send the key of an account that may read it",
            param="hearth.collections",
        ) from exc


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI's requestBody for a route that reads its body itself: the model's JSON schema
    with its definitions inlined (they would otherwise point outside the document)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    content = {"application/json": {"schema": inline(schema)}}
    return {"requestBody": {"required": True, "content": content}}


class _RawRoute(APIRoute):
    """A route whose endpoint takes the `Request` and returns an ASGI reply (a Starlette
    `Response` or one of `hearth.http.replies`), nothing else: FastAPI's request handler (dependency
    solving, which parses cookies and query string whether or not anything asks for them;
    body decoding) is skipped. Still a FastAPI route, so it is documented and its
    exceptions meet the app's handlers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, ASGIApp]]:
        return self.endpoint  # type: ignore[no-any-return]


async def chat_completions(request: Request) -> JsonReply | EventStream:
    """Create a chat completion; with `stream: true`, server-sent events chunk by chunk.

    Extension: `"hearth": {"collections": ["<id>", ...], "k": 5}` answers from those
    document collections; the passages used come back as `citations` (in the response, or
    in the first chunk when streaming)."""
    # A raw route (`_RawRoute`), served from outside Starlette's stack too (http.hot_path): this
    # is the gateway's hottest path, where FastAPI's dependency solving, Starlette's header
    # and body helpers and its responses cost more CPU than the rest of the request. The
    # headers it reads are found in one pass; the body is decoded and validated once, in
    # pydantic's Rust parser; errors keep their shape (the handler for
    # RequestValidationError), and the key is checked before the body, as when it was a
    # dependency.
    state = request.app.state
    affinity = state.settings.session_affinity_header
    authorization, asked_cache, session = _headers(request.scope, affinity)
    caller = await key_caller_for(state, bearer_of(authorization))
    body = _parse(ChatCompletionRequest, await _body(request.receive))
    gateway: Gateway = state.gateway
    citations = None
    if body.model_extra and "hearth" in body.model_extra:
        body, found = await _attach(state.answerer, caller, body)
        citations = [c.model_dump(mode="json") for c in found]
    timing = request_timing(request.scope)
    if not body.stream:
        cache = _use_cache(asked_cache, caller)
        result = await gateway.chat(body, caller, session=session, timing=timing, cache=cache)
        if citations is not None:
            result.citations = citations  # type: ignore[attr-defined]
        headers = [_overhead(timing)]
        if cache:
            headers.append((_CACHE, b"hit" if timing.cached else b"miss"))
        return JsonReply(result.model_dump_json().encode(), headers)
    batches = await gateway.chat_stream_batches(body, caller, session=session, timing=timing)
    if citations is not None:
        batches = _with_citations(batches, citations)
    return EventStream(
        sse_event_batches(batches, include_usage=body.include_usage),
        [*_SSE_HEADERS, _overhead(timing)],
    )


router.add_api_route(
    "/chat/completions",
    chat_completions,
    methods=["POST"],
    response_model=None,
    openapi_extra=_body_schema(ChatCompletionRequest),
    route_class_override=_RawRoute,
)

# Served directly by the app as well (hearth.http.hot_path), outside Starlette's stack.
HOT_ROUTES = [HotRoute(router.prefix + "/chat/completions", chat_completions)]


async def _body(receive: Receive) -> bytes:
    """The request's body, from the ASGI messages."""
    pieces = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # The client left, or RequestMiddleware cut off a body over the size limit (it
            # then answers 413 in place of this).
            raise InvalidRequest("The request body could not be read.")
        piece = message.get("body", b"")
        if not message.get("more_body", False):
            return b"".join((*pieces, piece)) if pieces else piece
        pieces.append(piece)


def _headers(scope: Scope, affinity: str | None) -> tuple[str, str, str | None]:
    """Authorization, X-Hearth-Cache and the session-affinity header (if one is set), in
    one pass over the raw headers."""
    wanted = affinity.lower().encode("latin-1") if affinity else None
    authorization = asked_cache = ""
    session = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == _CACHE:
            asked_cache = value.decode("latin-1")
        elif name == wanted:
            session = value.decode("latin-1")
    return authorization, asked_cache, session


def _parse(model: type[M], raw: bytes) -> M:
    """Decode and validate a JSON body in one pass; errors as FastAPI reports them."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _use_cache(asked: str, caller: Caller | None) -> bool:
    """The response cache is opt-in: the key's setting, or `X-Hearth-Cache: use`; a request
    can also refuse it with `X-Hearth-Cache: no`."""
    asked = asked.lower()
    if asked in ("no", "off", "bypass"):
        return False
    return asked == "use" or bool(caller and caller.cache_responses)


def request_timing(scope: Scope) -> Timing:
    """The request's `Timing`, from when its first bytes were read; RequestMiddleware tells
    it when the response's last byte is written (`Timing.ended`)."""
    state = scope.get("state")
    received = state.get(RECEIVED) if state is not None else None
    if received is None:  # not under RequestMiddleware
        return Timing()
    timing = Timing(received)
    state[ON_END] = timing.ended
    return timing


async def _request_timing(request: Request) -> Timing:
    return request_timing(request.scope)


# For routes that take dependencies (Ollama's); async, as `_gateway`.
TimingDep = Annotated[Timing, Depends(_request_timing)]


def _ms(timing: Timing) -> str:
    return f"{timing.ready() * 1000:.2f}"


def _overhead(timing: Timing) -> tuple[bytes, bytes]:
    return _OVERHEAD, _ms(timing).encode()


def _json(result: BaseModel, timing: Timing) -> Response:
    return Response(
        result.model_dump_json(),
        media_type="application/json",
        headers={OVERHEAD_HEADER: _ms(timing)},
    )


async def _with_citations(
    batches: AsyncIterator[list[ChatCompletionChunk]], citations: list[dict]
) -> AsyncIterator[list[ChatCompletionChunk]]:
    first = True
    try:
        async for batch in batches:
            if first:
                batch[0].citations = citations  # type: ignore[attr-defined]
                first = False
            yield batch
    finally:
        await batches.aclose()  # type: ignore[attr-defined]


@router.post("/completions", response_model=Completion)
async def completions(
    body: CompletionRequest, request: Request, gateway: GatewayDep, caller: KeyCallerDep
) -> Response:
    """Create a text completion (OpenAI's legacy API: the prompt as it is, no chat
    template); with `stream: true`, server-sent events. One prompt per request."""
    timing = request_timing(request.scope)
    if not body.stream:
        return _json(await text_completions.complete(gateway, body, caller, timing), timing)
    chunks = await text_completions.complete_stream(gateway, body, caller, timing)
    return StreamingResponse(
        sse_events(chunks, include_usage=body.include_usage),  # type: ignore[arg-type]
        media_type="text/event-stream",
        headers={**SSE_HEADERS, OVERHEAD_HEADER: _ms(timing)},
    )


@router.post("/responses")
async def create_response(body: ResponseCreate, request: Request, caller: KeyCallerDep) -> Response:
    """Create a response (OpenAI's Responses API: text in, text out; `previous_response_id`
    continues a stored one); with `stream: true`, its events."""
    responses: Responses = request.app.state.responses
    timing = request_timing(request.scope)
    if not body.stream:
        result = await responses.create(body, caller, timing)
        return Response(orjson.dumps(result), media_type="application/json")
    events = await responses.stream(body, caller, timing)
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/responses/{response_id}")
async def get_response(response_id: str, request: Request, caller: KeyCallerDep) -> Response:
    """A stored response of this key's owner."""
    found = await request.app.state.responses.get(response_id, caller)
    return Response(orjson.dumps(found), media_type="application/json")


@router.delete("/responses/{response_id}")
async def delete_response(response_id: str, request: Request, caller: KeyCallerDep) -> Response:
    await request.app.state.responses.delete(response_id, caller)
    deleted = {"id": response_id, "object": "response", "deleted": True}
    return Response(orjson.dumps(deleted), media_type="application/json")


@router.post("/embeddings", response_model=EmbeddingResponse)
async def embeddings(
    body: EmbeddingRequest, request: Request, gateway: GatewayDep, caller: KeyCallerDep
) -> Response:
    """Embed a string or a list of strings."""
    timing = request_timing(request.scope)
    result = await gateway.embed(body, caller, timing=timing)
    return _json(result, timing)
