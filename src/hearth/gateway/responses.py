"""/v1/responses: OpenAI's Responses API (text in, text out, streamed or not) over the
gateway's chat completions, with `previous_response_id` read from PostgreSQL.

A response is stored (unless `store: false`) with the messages its request added and its
output, and the response it continued; a request naming a previous response gets that
whole chain as its history, read in one recursive query that only follows the caller's own
responses. What the Responses API asks that Hearth cannot do here (tools, reasoning,
background, images) is a 400 naming it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert, select, text

from hearth.accounts.keys import Caller
from hearth.accounts.principal import LOCAL_USER
from hearth.db.session import Database
from hearth.engines.protocol import ChatCompletionRequest, ChatMessage, StreamOptions, new_id
from hearth.errors import HearthError, InvalidRequest, NotFound
from hearth.gateway.calls import Timing
from hearth.gateway.models import StoredResponse
from hearth.gateway.service import Gateway

_ROLES = {"user", "assistant", "system", "developer"}
_TEXT_PARTS = {"input_text", "output_text", "text"}
MAX_CHAIN = 200  # responses followed back through previous_response_id


class ResponseCreate(BaseModel):
    """POST /v1/responses. Fields Hearth cannot honour are refused by name."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] = Field(description="Text, or a list of messages.")
    instructions: str | None = Field(default=None, description="A system message, this turn only.")
    previous_response_id: str | None = Field(default=None, max_length=64)
    stream: bool = False
    store: bool = True
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    text: dict[str, Any] | None = Field(default=None, description='{"format": {...}}')
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    truncation: Literal["disabled"] | None = None
    user: str | None = None
    reasoning: dict[str, Any] | None = None
    background: bool | None = None
    include: list[str] | None = None
    service_tier: Literal["auto", "default"] | None = None


def _refuse(name: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"'{name}' {why}", param=name)


def _messages(body: ResponseCreate) -> list[dict[str, str]]:
    """The request's own messages, as chat messages ({role, content})."""
    if isinstance(body.input, str):
        return [{"role": "user", "content": body.input}]
    out = []
    for i, item in enumerate(body.input):
        kind = item.get("type", "message")
        if kind != "message":
            raise InvalidRequest(
                f"input[{i}] is a '{kind}' item; only messages are supported", param="input"
            )
        role = item.get("role")
        if role not in _ROLES:
            raise InvalidRequest(f"input[{i}].role must be one of {sorted(_ROLES)}", param="input")
        content = item.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise InvalidRequest(
                f"input[{i}].content must be text or a list of parts", param="input"
            )
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidRequest(
                    f"input[{i}] has a '{kind}' part; only text is supported", param="input"
                )
            if not isinstance(part.get("text"), str):
                raise InvalidRequest(f"input[{i}]: a text part needs its text", param="input")
            texts.append(part["text"])
        out.append({"role": role, "content": "".join(texts)})
    if not out:
        raise InvalidRequest("input must not be empty", param="input")
    return out


def _check(body: ResponseCreate) -> dict[str, Any]:
    """Refuse what cannot be honoured; the chat request's extra fields (response_format)."""
    if body.tools:
        raise _refuse(
            "tools", "are not supported on /v1/responses by Hearth yet; use /v1/chat/completions"
        )
    if body.tool_choice not in (None, "auto", "none"):
        raise _refuse("tool_choice", "needs tools, which /v1/responses does not support here")
    if body.reasoning:
        raise _refuse(
            "reasoning", "is not supported: the models served here take no reasoning settings"
        )
    if body.background:
        raise _refuse("background", "is not supported: responses are answered while you wait")
    if body.include:
        raise _refuse("include", "is not supported: there is nothing more to include")
    extra: dict[str, Any] = {}
    form = (body.text or {}).get("format")
    if body.text and set(body.text) - {"format"}:
        raise _refuse(
            "text", f"has fields Hearth does not know: {sorted(set(body.text) - {'format'})}"
        )
    if form is not None and form != {"type": "text"}:
        kind = form.get("type") if isinstance(form, dict) else None
        if kind == "json_object":
            extra["response_format"] = {"type": "json_object"}
        elif kind == "json_schema" and isinstance(form.get("schema"), dict):
            spec = {"name": form.get("name", "response"), "schema": form["schema"]}
            if "strict" in form:
                spec["strict"] = form["strict"]
            extra["response_format"] = {"type": "json_schema", "json_schema": spec}
        else:
            raise _refuse("text", "format must be text, json_object, or json_schema with a schema")
    return extra


def _owner(caller: Caller | None) -> str:
    return caller.principal.user_id if caller else LOCAL_USER.user_id


# The chain a response continues, newest first, only through the owner's own responses.
_CHAIN = text(
    """
    WITH RECURSIVE chain(id, previous_id, input, output_text, depth) AS (
        SELECT id, previous_id, input, output_text, 0 FROM gateway_response
        WHERE id = :id AND owner_id = :owner
      UNION ALL
        SELECT r.id, r.previous_id, r.input, r.output_text, c.depth + 1
        FROM gateway_response r JOIN chain c ON r.id = c.previous_id
        WHERE r.owner_id = :owner AND c.depth < :most
    )
    SELECT input, output_text FROM chain ORDER BY depth DESC
    """
)


class Responses:
    def __init__(self, database: Database, gateway: Gateway) -> None:
        self.database, self.gateway = database, gateway

    async def _history(self, previous: str | None, owner: str) -> list[dict[str, str]]:
        if previous is None:
            return []
        async with self.database.session() as session:
            rows = (
                await session.execute(_CHAIN, {"id": previous, "owner": owner, "most": MAX_CHAIN})
            ).all()
        if not rows:
            raise NotFound(f"no response '{previous}'", param="previous_response_id")
        history: list[dict[str, str]] = []
        for messages, output in rows:
            history += messages
            history.append({"role": "assistant", "content": output})
        return history

    async def _chat_request(
        self, body: ResponseCreate, caller: Caller | None
    ) -> tuple[ChatCompletionRequest, list[dict[str, str]]]:
        extra = _check(body)
        own = _messages(body)
        history = await self._history(body.previous_response_id, _owner(caller))
        system = [{"role": "system", "content": body.instructions}] if body.instructions else []
        request = ChatCompletionRequest(
            model=body.model,
            messages=[ChatMessage(**m) for m in system + history + own],  # type: ignore[arg-type]
            max_tokens=body.max_output_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            user=body.user,
            **extra,
        )
        return request, own

    async def create(
        self, body: ResponseCreate, caller: Caller | None, timing: Timing
    ) -> dict[str, Any]:
        """The whole response (non-streaming)."""
        request, own = await self._chat_request(body, caller)
        result = await self.gateway.chat(request, caller, timing=timing)
        choice = result.choices[0]
        usage = result.usage
        response = _response(
            body,
            new_id("resp"),
            result.model,
            choice.message.content or "",
            choice.finish_reason,
            (usage.prompt_tokens, usage.completion_tokens) if usage else None,
        )
        await self._store(body, caller, own, response)
        return response

    async def stream(
        self, body: ResponseCreate, caller: Caller | None, timing: Timing
    ) -> AsyncIterator[bytes]:
        """The response's server-sent events, as the Responses API names them. The first
        chunk is awaited before this returns: an engine failing up front is an HTTP error."""
        request, own = await self._chat_request(body, caller)
        request = request.model_copy(
            update={"stream": True, "stream_options": StreamOptions(include_usage=True)}
        )
        chunks = await self.gateway.chat_stream(request, caller, timing=timing)
        return self._events(body, caller, own, chunks)

    async def _events(
        self, body: ResponseCreate, caller: Caller | None, own: list[dict[str, str]], chunks: Any
    ) -> AsyncIterator[bytes]:
        rid, item = new_id("resp"), new_id("msg")
        seq = 0

        def event(kind: str, **fields: Any) -> bytes:
            nonlocal seq
            payload = {"type": kind, "sequence_number": seq, **fields}
            seq += 1
            return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

        start = _response(body, rid, body.model, "", None, None, status="in_progress")
        yield event("response.created", response=start)
        yield event("response.in_progress", response=start)
        message = {
            "type": "message",
            "id": item,
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        yield event("response.output_item.added", output_index=0, item=message)
        part = {"type": "output_text", "text": "", "annotations": []}
        yield event(
            "response.content_part.added", item_id=item, output_index=0, content_index=0, part=part
        )
        parts: list[str] = []
        usage, finish, model = None, None, body.model
        try:
            async for chunk in chunks:
                model = chunk.model
                if chunk.usage:
                    usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    finish = choice.finish_reason or finish
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        yield event(
                            "response.output_text.delta",
                            item_id=item,
                            output_index=0,
                            content_index=0,
                            delta=choice.delta.content,
                            logprobs=[],
                        )
        except HearthError as exc:
            failed = _response(body, rid, model, "".join(parts), finish, usage, status="failed")
            failed["error"] = {"code": exc.code or exc.type, "message": exc.message}
            yield event("response.failed", response=failed)
            return
        finally:
            await chunks.aclose()
        text_out = "".join(parts)
        done = _response(body, rid, model, text_out, finish, usage, item_id=item)
        yield event(
            "response.output_text.done",
            item_id=item,
            output_index=0,
            content_index=0,
            text=text_out,
            logprobs=[],
        )
        yield event(
            "response.content_part.done",
            item_id=item,
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": text_out, "annotations": []},
        )
        yield event("response.output_item.done", output_index=0, item=done["output"][0])
        await self._store(body, caller, own, done)
        yield event(
            f"response.{'completed' if done['status'] == 'completed' else 'incomplete'}",
            response=done,
        )

    async def _store(
        self,
        body: ResponseCreate,
        caller: Caller | None,
        own: list[dict[str, str]],
        response: dict[str, Any],
    ) -> None:
        if not body.store:
            return
        async with self.database.session() as session, session.begin():
            await session.execute(
                insert(StoredResponse).values(
                    id=response["id"],
                    owner_id=_owner(caller),
                    previous_id=body.previous_response_id,
                    model=response["model"],
                    input=own,
                    output_text=_output_text(response),
                    body=response,
                )
            )

    async def get(self, response_id: str, caller: Caller | None) -> dict[str, Any]:
        async with self.database.session() as session:
            body = await session.scalar(
                select(StoredResponse.body).where(
                    StoredResponse.id == response_id, StoredResponse.owner_id == _owner(caller)
                )
            )
        if body is None:
            raise NotFound(f"no response '{response_id}'")
        return body  # type: ignore[no-any-return]

    async def delete(self, response_id: str, caller: Caller | None) -> None:
        async with self.database.session() as session, session.begin():
            result = await session.execute(
                delete(StoredResponse).where(
                    StoredResponse.id == response_id, StoredResponse.owner_id == _owner(caller)
                )
            )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"no response '{response_id}'")


def _output_text(response: dict[str, Any]) -> str:
    return "".join(p["text"] for item in response["output"] for p in item["content"])


def _response(
    body: ResponseCreate,
    rid: str,
    model: str,
    text_out: str,
    finish: str | None,
    usage: tuple[int, int] | None,
    *,
    status: str | None = None,
    item_id: str | None = None,
) -> dict[str, Any]:
    """The response object as OpenAI's API returns it."""
    incomplete = finish == "length"
    if status is None:
        status = "incomplete" if incomplete else "completed"
    output = []
    if status != "in_progress":
        output = [
            {
                "type": "message",
                "id": item_id or new_id("msg"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text_out, "annotations": []}],
            }
        ]
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "previous_response_id": body.previous_response_id,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "metadata": body.metadata or {},
        "store": body.store,
        "text": body.text or {"format": {"type": "text"}},
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "truncation": "disabled",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "usage": None
        if usage is None
        else {
            "input_tokens": usage[0],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage[1],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage[0] + usage[1],
        },
    }
