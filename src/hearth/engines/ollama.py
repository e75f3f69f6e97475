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
from hearth.errors import InvalidRequest, UpstreamError

# Ollama has no "developer" role; OpenAI defines it as the newer name for "system".
_ROLES = {"developer": "system"}


# --- Ollama's reply shapes (only the fields we use; Ollama adds timings and more) ---------


class _Message(BaseModel):
    content: str = ""
    thinking: str | None = None  # reasoning models, when Ollama separates it


class _ChatPart(BaseModel):
    """A non-streaming reply, or one NDJSON line of a stream."""

    message: _Message
    done: bool
    done_reason: str | None = None
    prompt_eval_count: int | None = None  # left out when the whole prompt was cached
    eval_count: int | None = None


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
        payload = self._chat_payload(request, stream=False)
        body = await self._post_json("api/chat", payload, model=request.model)
        reply = self._parse_part(body, "chat reply")
        if not reply.done:
            raise UpstreamError(f"engine '{self.name}' sent an unfinished chat reply")
        message = AssistantMessage(content=reply.message.content, **_reasoning(reply.message))
        return ChatCompletion(
            model=request.model,
            choices=[Choice(message=message, finish_reason=_finish_reason(reply))],
            usage=_usage(reply),
        )

    async def chat_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        payload = self._chat_payload(request, stream=True)
        chunk_id, created = new_id("chatcmpl"), int(time.time())

        def chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=chunk_id,
                created=created,
                model=request.model,
                choices=[ChunkChoice(delta=delta, finish_reason=finish)],
            )

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
                if part.message.content or part.message.thinking:
                    content = part.message.content or None
                    yield chunk(Delta(content=content, **_reasoning(part.message)))
                if part.done:
                    yield chunk(Delta(), _finish_reason(part))
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

    # --- translation -----------------------------------------------------------------------

    def _chat_payload(self, request: ChatCompletionRequest, *, stream: bool) -> dict[str, Any]:
        messages = []
        for i, message in enumerate(request.messages):
            try:
                text = message.text()
            except ValueError as exc:
                raise InvalidRequest(str(exc), param=f"messages[{i}].content") from exc
            messages.append({"role": _ROLES.get(message.role, message.role), "content": text})
        options = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "num_predict": request.token_limit,
            "stop": request.stop,
            "presence_penalty": request.presence_penalty,
            "frequency_penalty": request.frequency_penalty,
        }
        payload: dict[str, Any] = {"model": request.model, "messages": messages, "stream": stream}
        # Unset options are left out so that the model's own defaults (its Modelfile) apply.
        if chosen := {key: value for key, value in options.items() if value is not None}:
            payload["options"] = chosen
        if self.config.keep_alive is not None:
            payload["keep_alive"] = self.config.keep_alive
        return payload

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


def _reasoning(message: _Message) -> dict[str, str]:
    # `reasoning_content` is where vLLM and DeepSeek put a model's thinking; without this
    # it would be dropped, and a thinking model would seem silent for a long time.
    return {"reasoning_content": message.thinking} if message.thinking else {}
