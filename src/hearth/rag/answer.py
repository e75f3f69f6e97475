"""Answering from documents: retrieve, fit the passages into the model's context window,
ask the model, stream its answer with the citations it was given.

Used by `POST /api/collections/{id}/ask` and by /v1/chat/completions requests that attach
collections (`"hearth": {"collections": [...]}`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import BaseModel, Field, ValidationError

from hearth.accounts.principal import Principal
from hearth.engines.protocol import ChatCompletionChunk, ChatCompletionRequest, ChatMessage
from hearth.errors import InvalidRequest
from hearth.gateway.context import ANSWER_TOKENS, context_window, estimate_tokens
from hearth.gateway.service import Gateway
from hearth.rag.schemas import Citation
from hearth.rag.service import Documents


class HearthOptions(BaseModel):
    """The `hearth` member of a /v1/chat/completions body (an extension of OpenAI's API)."""

    collections: list[uuid.UUID] = Field(min_length=1, max_length=20)
    k: int = Field(default=5, ge=1, le=50)


@dataclass(frozen=True)
class Grounding:
    """The retrieved passages that made it into the prompt, and the prompt's system message."""

    citations: list[Citation]
    system: str


class Answerer:
    def __init__(self, documents: Documents, gateway: Gateway, *, prompt_template: str) -> None:
        self.documents = documents
        self.gateway = gateway
        self.prompt_template = prompt_template

    async def ground(
        self,
        principal: Principal,
        collections: list[uuid.UUID],
        question: str,
        *,
        model: str,
        k: int,
        reserve: int,
    ) -> Grounding:
        """Retrieve for `question` and keep the best passages that fit the model's window
        next to `reserve` tokens (the conversation and the answer)."""
        hits = await self.documents.search(principal, collections, question, k=k)
        budget = self._context_window(model) - reserve - estimate_tokens(self.prompt_template)
        kept: list[Citation] = []
        sources: list[str] = []
        for hit in hits:
            source = _source(len(kept) + 1, hit)
            if estimate_tokens(source) > budget:
                break
            budget -= estimate_tokens(source)
            kept.append(hit)
            sources.append(source)
        body = "\n\n".join(sources) if sources else "(no relevant sources were found)"
        return Grounding(kept, self.prompt_template.replace("{sources}", body))

    async def ask(
        self,
        principal: Principal,
        collections: list[uuid.UUID],
        question: str,
        *,
        model: str,
        k: int,
        max_tokens: int | None,
        temperature: float | None,
    ) -> tuple[list[Citation], AsyncIterator[ChatCompletionChunk]]:
        """Citations, and the model's answer as a stream of chunks."""
        answer_tokens = max_tokens or ANSWER_TOKENS
        grounding = await self.ground(
            principal,
            collections,
            question,
            model=model,
            k=k,
            reserve=estimate_tokens(question) + answer_tokens,
        )
        request = ChatCompletionRequest(
            model=model,
            stream=True,
            max_tokens=max_tokens,
            temperature=temperature,
            messages=[
                ChatMessage(role="system", content=grounding.system),
                ChatMessage(role="user", content=question),
            ],
        )
        return grounding.citations, await self.gateway.chat_stream(request)

    async def attach(
        self, principal: Principal, request: ChatCompletionRequest
    ) -> tuple[ChatCompletionRequest, list[Citation]]:
        """Ground a /v1 chat request in the collections it names in `hearth.collections`:
        passages for its last user message go in front as a system message."""
        extra = dict(request.model_extra or {})
        try:
            options = HearthOptions.model_validate(extra.pop("hearth"))
        except ValidationError as exc:
            raise InvalidRequest(f"hearth: {exc.errors()[0]['msg']}", param="hearth") from exc
        question = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
        if not question:
            raise InvalidRequest("attaching collections needs a user message", param="messages")
        await self.documents.check_readable(principal, options.collections)
        reserve = sum(estimate_tokens(m.text()) for m in request.messages)
        reserve += request.token_limit or ANSWER_TOKENS
        grounding = await self.ground(
            principal,
            options.collections,
            question,
            model=request.model,
            k=options.k,
            reserve=reserve,
        )
        grounded = ChatCompletionRequest.model_validate(
            {
                **request.model_dump(exclude_none=True, exclude={"hearth"}),
                "messages": [
                    {"role": "system", "content": grounding.system},
                    *(m.model_dump(exclude_none=True) for m in request.messages),
                ],
            }
        )
        return grounded, grounding.citations

    def _context_window(self, model: str) -> int:
        window = context_window(self.gateway.routes, model)
        if window < 512:
            raise InvalidRequest(f"'{model}' has too small a context window for documents")
        return window


def _source(number: int, hit: Citation) -> str:
    where = hit.title or hit.filename
    if hit.page:
        where += f", page {hit.page}"
    if hit.headings:
        where += f" ({' > '.join(hit.headings)})"
    return f"[{number}] {where}\n{hit.text}"
