"""Adapter for Ollama's native API: /api/chat, /api/embed, /api/tags and /api/ps.

Reference: https://github.com/ollama/ollama/blob/main/docs/api.md. The native API rather
than Ollama's /v1 lets us send `keep_alive` (how long a model stays loaded) and ask which
models are loaded now (/api/ps), which the balancer uses to avoid cold loads. Requests are
translated from OpenAI's shapes; replies are validated, so a broken upstream shows up as
`UpstreamError` here rather than as a confusing failure further down the gateway.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import BaseModel

from hearth.config import OllamaEngineConfig
from hearth.engines._http import ErrorInfo, HttpEngine, clip
from hearth.engines._ollama_request import chat_payload
from hearth.engines.base import Embeddings, EngineLoad
from hearth.engines.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
    new_id,
)
from hearth.errors import HearthError, UpstreamError

# --- Ollama's reply shapes (only the fields we use; Ollama adds timings and more) ---------


class _Message(BaseModel):
    content: str = ""
    thinking: str | None = None  # reasoning models, when Ollama separates it
    tool_calls: list[dict[str, Any]] | None = None  # arguments as objects


class _ChatPart(BaseModel):
    """A non-streaming reply, or one NDJSON line of a stream."""

    message: _Message
    done: bool
    done_reason: str | None = None
    prompt_eval_count: int | None = None  # left out when the whole prompt was cached
    eval_count: int | None = None
    # Ollama 0.12.11 on, when asked: OpenAI's entries (token, logprob, bytes, top_logprobs).
    logprobs: list[dict[str, Any]] | None = None


class _EmbedReply(BaseModel):
    embeddings: list[list[float]]
    prompt_eval_count: int | None = None


class _ModelEntry(BaseModel):
    name: str | None = None
    model: str | None = None


class _ModelList(BaseModel):
    models: list[_ModelEntry]


class OllamaEngine(HttpEngine[OllamaEngineConfig]):
    kind = "ollama"
    # Ollama answers 503 when its queue is full (OLLAMA_MAX_QUEUE); a proxy or a hosted
    # Ollama says 429. Neither is the client's fault, and another engine may have room.
    _busy_statuses = frozenset({429, 503})
    # Ollama itself has no credentials: a 401/403 comes from a proxy in front of it.
    _auth_refused = "the engine refused Hearth's request"
    _context_hints = ("context length", "context window", "context size")

    def __init__(self, config: OllamaEngineConfig) -> None:
        super().__init__(config)
        # Upstream name → whether /api/show lists "vision" (None: it lists no capabilities).
        self._vision: dict[str, bool | None] = {}

    async def health(self) -> bool:
        healthy = await super().health()
        if healthy:
            # At the probes (the first as the gateway starts), once per model: never on a
            # request's path.
            await self._learn_capabilities()
        return healthy

    def takes_images(self, model: str) -> bool | None:
        return self._vision.get(model)

    async def _learn_capabilities(self) -> None:
        """Which models read images, from /api/show's `capabilities` (Ollama 0.6 on); a
        model it could not show is asked again at the next probe."""
        for model in self._models:
            name = model.upstream_name
            if model.type != "chat" or name in self._vision:
                continue
            try:
                reply = await self._request(
                    "POST",
                    "api/show",
                    orjson.dumps({"model": name}),
                    total=self.config.connect_timeout,
                )
                self._raise_for_status(reply, model=name)
                shown = self._loads(reply.content, "api/show")
            except HearthError:
                continue
            capabilities = shown.get("capabilities") if isinstance(shown, dict) else None
            self._vision[name] = (
                "vision" in capabilities if isinstance(capabilities, list) else None
            )

    async def loaded_models(self) -> list[str]:
        """The models Ollama holds in memory now (/api/ps): these answer without a load."""
        return await self._model_names("api/ps", quick=True)

    async def load(self) -> EngineLoad | None:
        """Which models are loaded (/api/ps), so the balancer avoids a needless cold load.
        Names appear both with and without Ollama's implicit `:latest` tag."""
        loaded = await self.loaded_models()
        names = set(loaded) | {name.removesuffix(":latest") for name in loaded}
        return EngineLoad(loaded_models=frozenset(names))

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        payload = chat_payload(request, self.name, stream=False, keep_alive=self.config.keep_alive)
        body = await self._post_json("api/chat", payload, model=request.model)
        reply = self._parse_part(body, "chat reply")
        if not reply.done:
            raise UpstreamError(f"engine '{self.name}' sent an unfinished chat reply")
        calls = _tool_calls(reply.message)
        message = AssistantMessage(
            content=reply.message.content or (None if calls else ""),
            **_reasoning(reply.message),
            **({"tool_calls": calls} if calls else {}),
        )
        finish = "tool_calls" if calls else _finish_reason(reply)
        logprobs = {"content": reply.logprobs} if reply.logprobs else None
        return ChatCompletion(
            model=request.model,
            choices=[Choice(message=message, finish_reason=finish, logprobs=logprobs)],
            usage=_usage(reply),
        )

    async def chat_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        payload = chat_payload(request, self.name, stream=True, keep_alive=self.config.keep_alive)
        chunk_id, created = new_id("chatcmpl"), int(time.time())

        def chunk(
            delta: Delta, finish: str | None = None, logprobs: list[Any] | None = None
        ) -> ChatCompletionChunk:
            choice = ChunkChoice(
                delta=delta,
                finish_reason=finish,
                logprobs={"content": logprobs} if logprobs else None,
            )
            return ChatCompletionChunk(
                id=chunk_id, created=created, model=request.model, choices=[choice]
            )

        called = 0  # tool calls so far: each streamed call's index
        async with self._stream(
            "api/chat", payload, accept="application/x-ndjson", model=request.model
        ) as response:
            # Ollama has scheduled the request and (if needed) loaded the model before it
            # answers 200, so the role chunk can go now, ahead of the first token.
            yield chunk(Delta(role="assistant", content=""))
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                part = self._parse_part(self._loads(line, "stream line"), "stream line")
                calls = _tool_calls(part.message, first=called)
                if part.message.content or part.message.thinking or calls or part.logprobs:
                    content = part.message.content or None
                    fields = _reasoning(part.message) | ({"tool_calls": calls} if calls else {})
                    yield chunk(Delta(content=content, **fields), logprobs=part.logprobs)
                    called += len(calls)
                if part.done:
                    yield chunk(Delta(), "tool_calls" if called else _finish_reason(part))
                    if request.include_usage:
                        yield ChatCompletionChunk(
                            id=chunk_id,
                            created=created,
                            model=request.model,
                            choices=[],
                            usage=_usage(part),
                        )
                    return
        raise UpstreamError(f"engine '{self.name}' ended the stream before its final line")

    async def pull(self, model: str, *, insecure: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Have Ollama pull `model` (its own name) from its registry: its progress lines
        (`{"status": ..., "digest", "total", "completed"}`), ending with "success"; an
        `{"error": ...}` line ends it too."""
        payload = {"model": model, "insecure": insecure, "stream": True}
        async with self._stream(
            "api/pull", payload, accept="application/x-ndjson", model=model
        ) as response:
            async for line in response.aiter_lines():
                if line.strip():
                    part = self._loads(line, "pull progress")
                    if not isinstance(part, dict):
                        raise UpstreamError(f"engine '{self.name}' sent a malformed pull line")
                    yield part

    async def embed(self, model: str, texts: list[str]) -> Embeddings:
        if not texts:
            return Embeddings(vectors=[], prompt_tokens=0)
        payload: dict[str, Any] = {"model": model, "input": texts}
        if self.config.keep_alive is not None:
            payload["keep_alive"] = self.config.keep_alive
        body = await self._post_json("api/embed", payload, model=model)
        reply = self._validate(_EmbedReply, body, "embeddings")
        if len(reply.embeddings) != len(texts):
            raise UpstreamError(
                f"engine '{self.name}' returned {len(reply.embeddings)} vectors "
                f"for {len(texts)} inputs"
            )
        return Embeddings(vectors=reply.embeddings, prompt_tokens=reply.prompt_eval_count or 0)

    # --- model lists ---------------------------------------------------------------------

    async def _fetch_models(self, *, quick: bool) -> list[str]:
        return await self._model_names("api/tags", quick=quick)

    async def _model_names(self, path: str, *, quick: bool) -> list[str]:
        listing = self._validate(
            _ModelList, await self._get_json(path, what=path, quick=quick), "model list"
        )
        names = [entry.name or entry.model or "" for entry in listing.models]
        if "" in names:
            raise UpstreamError(f"engine '{self.name}' listed a model without a name ({path})")
        return names

    # --- parsing ---------------------------------------------------------------------------

    def _parse_part(self, payload: Any, what: str) -> _ChatPart:
        # Ollama reports failures after the 200 (a runner crash, say) as an error line.
        if isinstance(payload, dict) and payload.get("error") is not None:
            raise UpstreamError(
                f"engine '{self.name}' failed mid-stream: {clip(str(payload['error']))}"
            )
        return self._validate(_ChatPart, payload, what)

    @staticmethod
    def _error_info(body: bytes, *, fallback: str) -> ErrorInfo:
        """Ollama's `{"error": "..."}` text, and whether the body had that shape.

        A missing model is JSON (`model "x" not found, try pulling it first`); Ollama's
        router answers a wrong path with a plain-text "404 page not found".
        """
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            return ErrorInfo(clip(payload["error"]) or fallback, structured=True)
        text = body.decode("utf-8", errors="replace").strip()
        return ErrorInfo(clip(text) or fallback, structured=False)


def _finish_reason(part: _ChatPart) -> str:
    # Ollama's other reasons ("load", "unload") only answer requests without messages.
    return "length" if part.done_reason == "length" else "stop"


def _usage(part: _ChatPart) -> Usage:
    prompt, completion = part.prompt_eval_count or 0, part.eval_count or 0
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _tool_calls(message: _Message, *, first: int | None = None) -> list[dict[str, Any]]:
    """Ollama's tool calls in OpenAI's shape: an id (Ollama gives none), the arguments as
    JSON text; with `first`, as stream deltas, each with its index (Ollama sends each call
    whole, in one line)."""
    calls = []
    for offset, call in enumerate(message.tool_calls or []):
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments or {}).decode()
        entry: dict[str, Any] = {
            "id": new_id("call"),
            "type": "function",
            "function": {"name": function.get("name", ""), "arguments": arguments},
        }
        calls.append(entry if first is None else {"index": first + offset, **entry})
    return calls


def _reasoning(message: _Message) -> dict[str, str]:
    # `reasoning_content` is where vLLM and DeepSeek put a model's thinking; without this
    # it would be dropped, and a thinking model would seem silent for a long time.
    return {"reasoning_content": message.thinking} if message.thinking else {}
