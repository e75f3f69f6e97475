"""Ollama's native API served by Hearth (/api/chat, /api/generate, /api/embed, /api/tags, ...),
so Ollama clients and tools can point at Hearth unchanged.

Reference: https://github.com/ollama/ollama/blob/main/docs/api.md. Requests are translated
to the gateway's OpenAI-shaped calls, so the same keys, limits, usage rows and metrics
apply as on /v1; replies go back in Ollama's shapes: NDJSON streams (streaming is Ollama's
default), durations in nanoseconds, and errors as `{"error": "..."}`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from hearth import __version__
from hearth.accounts.api import KeyCallerDep
from hearth.engines.llamacpp import joined_tool_calls as joined
from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
)
from hearth.errors import HearthError, InvalidRequest, ModelNotFound, NotFound, UpstreamError
from hearth.gateway.api import GatewayDep, TimingDep
from hearth.gateway.calls import Timing
from hearth.gateway.ollama_schemas import (
    GenerateBase,
    OllamaChatRequest,
    OllamaEmbeddingsRequest,
    OllamaEmbedRequest,
    OllamaGenerateRequest,
    OllamaMessage,
    OllamaOptions,
    OllamaPullRequest,
    OllamaShowRequest,
)
from hearth.gateway.service import Gateway
from hearth.http.outages import DEPENDENCY_ERRORS
from hearth.http.replies import Streamed

# The Ollama API version Hearth answers like; clients check it before using newer fields.
OLLAMA_VERSION = "0.12.0"
NDJSON = "application/x-ndjson"
_NOT_FOUND = re.compile(r"The model '(.*)' does not exist")

M = TypeVar("M", bound=BaseModel)


class _OllamaRoute(APIRoute):
    """Errors in Ollama's shape, `{"error": "..."}`, whatever raised them (a service, the
    key check, body validation): Ollama's SDKs read that field, not OpenAI's object."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            if request.method == "POST":
                _body_is_json(request.scope)
            try:
                return await handler(request)
            except HearthError as exc:
                headers = None
                if exc.retry_after is not None:
                    headers = {"retry-after": str(max(1, math.ceil(exc.retry_after)))}
                return error_response(exc.status, _message(exc), headers)
            except RequestValidationError as exc:
                return error_response(400, _validation_message(exc))
            except StarletteHTTPException as exc:  # a body refused before parsing
                return error_response(exc.status_code, str(exc.detail), exc.headers)
            except DEPENDENCY_ERRORS as exc:
                outage = request.app.state.outages.of(exc)
                if outage is None:
                    raise
                headers = {"retry-after": str(math.ceil(outage.retry_after or 1))}
                return error_response(outage.status, outage.message, headers)

        return route

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A wrong method is refused before the handler above runs: in Ollama's shape too.
        if self.methods and scope["method"] not in self.methods:
            allowed = ", ".join(sorted(self.methods))
            reply = error_response(405, "method not allowed", {"allow": allowed})
            await reply(scope, receive, send)
            return
        await super().handle(scope, receive, send)


def _body_is_json(scope: Scope) -> None:
    """Read a POST body as JSON whatever its content type says, as Ollama does: its own
    examples use `curl -d '{...}'`, which sends application/x-www-form-urlencoded."""
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
    scope["headers"] = [*headers, (b"content-type", b"application/json")]


router = APIRouter(prefix="/api", tags=["ollama"], route_class=_OllamaRoute)


# --- routes -----------------------------------------------------------------------------


@router.get("/version")
async def version() -> Response:
    """The Ollama API version Hearth is compatible with."""
    return _json({"version": OLLAMA_VERSION, "hearth": __version__})


@router.get("/tags")
async def tags(gateway: GatewayDep, caller: KeyCallerDep) -> Response:
    """The models served (to this key), as Ollama lists its local models."""
    allowed = {card.id for card in gateway.list_models(caller).data}
    return _json({"models": [_model_entry(gateway, name) for name in sorted(allowed)]})


@router.get("/ps")
async def running_models(gateway: GatewayDep, caller: KeyCallerDep) -> Response:
    """Models ready to answer: for Hearth, every model it serves."""
    allowed = sorted(card.id for card in gateway.list_models(caller).data)
    entries = [_model_entry(gateway, n) | {"expires_at": "0001-01-01T00:00:00Z"} for n in allowed]
    return _json({"models": entries})


@router.post("/show")
async def show(body: OllamaShowRequest, gateway: GatewayDep, caller: KeyCallerDep) -> Response:
    """What Ollama tells about a model; Hearth knows its name and kind."""
    name = _served_name(gateway, body.model or body.name)
    if caller is not None and not caller.may_use(name):
        raise ModelNotFound(name)
    entry = _model_entry(gateway, name)
    capabilities = ["embedding"] if _model_type(gateway, name) == "embedding" else ["completion"]
    return _json(
        {
            "modelfile": "",
            "parameters": "",
            "template": "",
            "details": entry["details"],
            "model_info": {},
            "capabilities": capabilities,
            "modified_at": entry["modified_at"],
        }
    )


@router.post("/pull")
async def pull(body: OllamaPullRequest, gateway: GatewayDep, caller: KeyCallerDep) -> Response:
    """Models are configured in Hearth, not pulled; for a model that Ollama engines serve,
    those engines pull it (progress passed on as NDJSON, or the last line)."""
    name = _served_name(gateway, body.model or body.name)
    served = gateway.routes.find(name)
    if served is None or (caller is not None and not caller.may_use(name)):
        raise NotFound(
            f'model "{name}" is not configured in Hearth: models are added to its '
            "configuration (its engines' model lists), not pulled"
        )
    ollamas = [d for d in served.deployments if d.engine.kind == "ollama"]
    if not ollamas:
        engine = served.deployments[0].engine
        raise InvalidRequest(
            f'model "{name}" is served by Hearth\'s {engine.kind} engine "{engine.name}", '
            "whose models are configured, not pulled: it is ready to use"
        )
    lines = _pulled(ollamas, insecure=body.insecure)
    if body.stream:
        return Streamed(lines, media_type=NDJSON)
    last = b""
    async for line in lines:
        last = line
    reply = orjson.loads(last)
    if "error" in reply:
        raise UpstreamError(reply["error"])
    return _json(reply)


async def _pulled(deployments: list[Any], *, insecure: bool) -> AsyncIterator[bytes]:
    """Each engine's progress in turn; success once all have the model, else the error."""
    try:
        for deployment in deployments:
            async for part in deployment.engine.pull(deployment.upstream, insecure=insecure):
                if "error" in part:
                    message = f"engine '{deployment.engine.name}': {part['error']}"
                    yield orjson.dumps({"error": message}) + b"\n"
                    return
                if part.get("status") != "success":
                    yield orjson.dumps(part) + b"\n"
    except HearthError as exc:
        yield orjson.dumps({"error": _message(exc)}) + b"\n"
        return
    yield orjson.dumps({"status": "success"}) + b"\n"


@router.post("/chat")
async def chat(
    body: OllamaChatRequest, gateway: GatewayDep, caller: KeyCallerDep, timing: TimingDep
) -> Response:
    """Chat with a model; NDJSON chunk by chunk unless `"stream": false`."""
    messages = _openai_messages(body.messages)
    if not messages:
        # Ollama loads the model and answers at once when there is nothing to say.
        return _json(_loaded(_served_name(gateway, body.model), chat=True))
    request = _openai_request(gateway, body, messages, tools=body.tools)
    return await _answer(gateway, caller, request, timing, chat=True)


@router.post("/generate")
async def generate(
    body: OllamaGenerateRequest, gateway: GatewayDep, caller: KeyCallerDep, timing: TimingDep
) -> Response:
    """Complete a prompt (sent as one user message, after `system` if given)."""
    _refuse_generate_fields(body)
    if not body.prompt:
        return _json(_loaded(_served_name(gateway, body.model), chat=False))
    messages: list[dict[str, Any]] = []
    if body.system:
        messages.append({"role": "system", "content": body.system})
    user = OllamaMessage(role="user", content=body.prompt, images=body.images)
    messages += _openai_messages([user])
    request = _openai_request(gateway, body, messages)
    return await _answer(gateway, caller, request, timing, chat=False)


@router.post("/embed")
async def embed(
    body: OllamaEmbedRequest, gateway: GatewayDep, caller: KeyCallerDep, timing: TimingDep
) -> Response:
    """Embed a string or a list of strings; vectors in input order."""
    _refuse_embed_fields(body.options, body.keep_alive)
    if not body.truncate:
        raise InvalidRequest(
            "truncate false cannot be honoured: Hearth cuts each input to the embedding "
            "model's maximum length",
            param="truncate",
        )
    started = time.perf_counter_ns()
    if not body.input:  # as Ollama answers "" and []: no vectors
        return _json({"model": body.model, "embeddings": []})
    model = _served_name(gateway, body.model)
    fields = {"model": model, "input": body.input, "dimensions": body.dimensions}
    request = _validated(EmbeddingRequest, {k: v for k, v in fields.items() if v is not None})
    result = await gateway.embed(request, caller, timing=timing)
    return _json(
        {
            "model": body.model,
            "embeddings": [item.embedding for item in sorted(result.data, key=lambda d: d.index)],
            "total_duration": time.perf_counter_ns() - started,
            "load_duration": 0,
            "prompt_eval_count": result.usage.prompt_tokens,
        }
    )


@router.post("/embeddings")
async def embeddings(
    body: OllamaEmbeddingsRequest, gateway: GatewayDep, caller: KeyCallerDep, timing: TimingDep
) -> Response:
    """The older single-prompt endpoint: `{"embedding": [...]}`."""
    _refuse_embed_fields(body.options, body.keep_alive)
    if not body.prompt:
        return _json({"embedding": []})
    request = EmbeddingRequest(model=_served_name(gateway, body.model), input=body.prompt)
    result = await gateway.embed(request, caller, timing=timing)
    return _json({"embedding": result.data[0].embedding})


# --- translation ---------------------------------------------------------------------------


def _openai_messages(messages: list[OllamaMessage]) -> list[dict[str, Any]]:
    """Ollama's messages in OpenAI's shape: images as data-URL parts, an assistant's tool
    calls with an id and their arguments as JSON text, and a tool's result tied by that id
    to the latest call of the tool it names (`tool_name`)."""
    ids: dict[str, str] = {}  # tool name → id of its latest call
    out = []
    for i, message in enumerate(messages):
        entry: dict[str, Any] = {"role": message.role, "content": _content(message)}
        if message.tool_calls:
            calls = []
            for call in message.tool_calls:
                name, arguments = call.function.get("name"), call.function.get("arguments")
                if not isinstance(name, str):
                    raise InvalidRequest(
                        "a tool call needs a function name", param=f"messages.{i}.tool_calls"
                    )
                ids[name] = call_id = f"call_{len(ids)}_{i}"
                text = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {})
                calls.append({"id": call_id, "type": "function",
                              "function": {"name": name, "arguments": _text(text)}})  # fmt: skip
            entry["tool_calls"] = calls
        if message.role == "tool" and message.tool_name in ids:
            entry["tool_call_id"] = ids[message.tool_name]
        out.append(entry)
    return out


def _text(data: str | bytes) -> str:
    return data if isinstance(data, str) else data.decode()


def _content(message: OllamaMessage) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    for image in message.images:
        url = f"data:{_image_type(image)};base64,{image}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _image_type(b64: str) -> str:
    # Ollama takes bare base64; a data URL needs the type, which the first bytes tell.
    for prefix, kind in (("iVBOR", "image/png"), ("/9j/", "image/jpeg"), ("R0lG", "image/gif")):
        if b64.startswith(prefix):
            return kind
    return "image/webp" if b64.startswith("UklG") else "application/octet-stream"


def _openai_request(
    gateway: Gateway,
    body: GenerateBase,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
) -> ChatCompletionRequest:
    """The OpenAI-shaped request: options with an OpenAI name under it, the others (and
    `keep_alive`, `think`) under their own, for the engine to honour or refuse by name."""
    options = body.options or OllamaOptions()
    fields: dict[str, Any] = {
        "model": _served_name(gateway, body.model),
        "messages": messages,
        "stream": body.stream,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "seed": options.seed,
        "stop": options.stop,
        "presence_penalty": options.presence_penalty,
        "frequency_penalty": options.frequency_penalty,
        "tools": tools or None,  # Ollama's tools are OpenAI's shape already
        "keep_alive": body.keep_alive,
        "think": body.think,
        "logprobs": body.logprobs or None,
        "top_logprobs": body.top_logprobs or None,
    } | options.others()
    if options.num_predict is not None and options.num_predict > 0:
        fields["max_tokens"] = options.num_predict
    if body.format == "json":
        fields["response_format"] = {"type": "json_object"}
    elif isinstance(body.format, dict):
        schema = {"name": "response", "schema": body.format}
        fields["response_format"] = {"type": "json_schema", "json_schema": schema}
    return _validated(ChatCompletionRequest, {k: v for k, v in fields.items() if v is not None})


_GENERATE_REFUSED = {
    "suffix": "fill-in-the-middle is not supported",
    "template": "the model's own chat template is used",
    "context": "Hearth keeps no generation contexts: send the conversation to /api/chat",
    "raw": "raw prompts are not supported: the model's chat template is used",
    "width": "image generation is not supported",
    "height": "image generation is not supported",
    "steps": "image generation is not supported",
}


def _refuse_generate_fields(body: OllamaGenerateRequest) -> None:
    for name, why in _GENERATE_REFUSED.items():
        value = getattr(body, name)
        if value not in (None, False, "", []):
            raise InvalidRequest(f"'{name}' cannot be honoured: {why}", param=name)


def _refuse_embed_fields(options: OllamaOptions | None, keep_alive: str | float | None) -> None:
    """Embedding models run with Hearth's own settings, and stay loaded."""
    if options is not None and (chosen := options.model_dump(exclude_none=True)):
        name = next(iter(chosen))
        raise InvalidRequest(
            f"options.{name} cannot be honoured: embedding models run with Hearth's settings",
            param=f"options.{name}",
        )
    if keep_alive in (0, "0", "0s", "0m", "0h"):
        raise InvalidRequest(
            "keep_alive 0 asks to unload the model, and Hearth keeps its models loaded",
            param="keep_alive",
        )


def _validated(model: type[M], fields: dict[str, Any]) -> M:
    """The OpenAI-shaped request an Ollama one translates to; a value OpenAI's shape
    refuses (an option out of range, an empty text to embed) is the client's error."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{where}: {first['msg']}", param=where) from exc


async def _answer(
    gateway: Gateway, caller: Any, request: ChatCompletionRequest, timing: Timing, *, chat: bool
) -> Response:
    # `timing`: the same figures as /v1 in the gateway's metrics; no header, which
    # Ollama's clients would not read.
    started = time.perf_counter_ns()
    name = request.model
    if not request.stream:
        result = await gateway.chat(request, caller, timing=timing)
        timing.ready()  # as /v1 fixes it for its header: the reply is about to start
        return _json(_reply(name, result, started, chat=chat))
    chunks = await gateway.chat_stream(request, caller, timing=timing)
    return Streamed(_ndjson(name, chunks, started, chat=chat), media_type=NDJSON)


def _reply(name: str, result: ChatCompletion, started: int, *, chat: bool) -> dict[str, Any]:
    choice = result.choices[0] if result.choices else None
    text = (choice.message.content if choice else None) or ""
    extra = (choice.message.model_extra or {}) if choice else {}
    reply: dict[str, Any] = {"model": name, "created_at": _now()}
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if extra.get("reasoning_content"):
            message["thinking"] = extra["reasoning_content"]
        if extra.get("tool_calls"):
            message["tool_calls"] = _tool_calls(extra["tool_calls"])
        reply["message"] = message
    else:
        reply["response"] = text
    if choice is not None and choice.logprobs and choice.logprobs.get("content"):
        reply["logprobs"] = choice.logprobs["content"]  # OpenAI's entries are Ollama's
    usage = result.usage
    prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
    return reply | _final(choice.finish_reason if choice else None, prompt, completion, started)


def _tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # OpenAI sends the arguments as a JSON string; Ollama as an object.
    out = []
    for call in calls:
        function = call.get("function") or {}
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = orjson.loads(arguments)
            except orjson.JSONDecodeError:
                arguments = {"arguments": arguments}
        out.append({"function": {"name": function.get("name", ""), "arguments": arguments}})
    return out


async def _ndjson(
    name: str, chunks: AsyncIterator[ChatCompletionChunk], started: int, *, chat: bool
) -> AsyncIterator[bytes]:
    finish, prompt, completion = None, 0, 0
    calls: list[ChatCompletionChunk] = []  # deltas of tool calls, joined before the end
    try:
        async for chunk in chunks:
            if chunk.usage is not None:
                prompt, completion = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                delta = choice.delta
                extra = delta.model_extra or {}
                if extra.get("tool_calls"):
                    calls.append(chunk)
                thinking = extra.get("reasoning_content")
                logprobs = (choice.logprobs or {}).get("content")
                if not (delta.content or thinking or logprobs):
                    continue
                line: dict[str, Any] = {"model": name, "created_at": _now()}
                if chat:
                    message = {"role": "assistant", "content": delta.content or ""}
                    if thinking:
                        message["thinking"] = thinking
                    line["message"] = message
                else:
                    line["response"] = delta.content or ""
                if logprobs:
                    line["logprobs"] = logprobs
                yield orjson.dumps(line | {"done": False}) + b"\n"
    except HearthError as exc:
        # The status line is gone: report in-band, as Ollama does when a runner fails.
        yield orjson.dumps({"error": _message(exc)}) + b"\n"
        return
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    if calls and chat:
        # Ollama sends each tool call whole, in a line of its own.
        message = {"role": "assistant", "content": "", "tool_calls": _tool_calls(joined(calls))}
        line = {"model": name, "created_at": _now(), "message": message, "done": False}
        yield orjson.dumps(line) + b"\n"
    last: dict[str, Any] = {"model": name, "created_at": _now()}
    if chat:
        last["message"] = {"role": "assistant", "content": ""}
    else:
        last["response"] = ""
    yield orjson.dumps(last | _final(finish, prompt, completion, started)) + b"\n"


def _final(finish: str | None, prompt: int, completion: int, started: int) -> dict[str, Any]:
    total = time.perf_counter_ns() - started
    return {
        "done_reason": "length" if finish == "length" else "stop",
        "done": True,
        "total_duration": total,
        "load_duration": 0,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": 0,
        "eval_count": completion,
        "eval_duration": total,
    }


def _loaded(name: str, *, chat: bool) -> dict[str, Any]:
    reply: dict[str, Any] = {"model": name, "created_at": _now()}
    if chat:
        reply["message"] = {"role": "assistant", "content": ""}
    else:
        reply["response"] = ""
    return reply | {"done_reason": "load", "done": True}


# --- models --------------------------------------------------------------------------------


def _model_type(gateway: Gateway, name: str) -> str | None:
    for deployment in gateway.routes.all():
        if deployment.model.name == name:
            return deployment.model.type
    return None


def _served_name(gateway: Gateway, name: str) -> str:
    """Ollama clients often add the implicit `:latest` tag to a bare name."""
    if _model_type(gateway, name) is None and name.endswith(":latest"):
        bare = name.removesuffix(":latest")
        if _model_type(gateway, bare) is not None:
            return bare
    return name


def _model_entry(gateway: Gateway, name: str) -> dict[str, Any]:
    if _model_type(gateway, name) is None:
        raise ModelNotFound(name)
    family = name.split(":")[0].split("/")[-1].split("-")[0]
    return {
        "name": name,
        "model": name,
        "modified_at": "1970-01-01T00:00:00Z",
        "size": 0,
        "digest": "",
        "details": {
            "parent_model": "",
            "format": "",
            "family": family,
            "families": [family],
            "parameter_size": "",
            "quantization_level": "",
        },
    }


# --- shapes --------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _json(payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Ollama's error shape: `{"error": "..."}` with the status."""
    return Response(
        orjson.dumps({"error": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _message(exc: HearthError) -> str:
    if isinstance(exc, ModelNotFound) and (found := _NOT_FOUND.match(exc.message)):
        # Ollama's own wording, which tools match on ("not found").
        return f'model "{found[1]}" not found, try pulling it first'
    return exc.message


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "invalid JSON in the request body"
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return f"{where}: {first.get('msg', 'invalid value')}" if where else first.get("msg", "")
