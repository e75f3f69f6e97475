"""Answering in a chat: store the question, fit the conversation (and passages from the
chat's collections) into the model's window, stream the answer through the gateway, store
the answer from its start, its text saved as it comes and at its end — also when it is
stopped, fails or its replica dies, with that status.

The stream is a sequence of `ChatEvent`s that the API sends as server-sent events.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from hearth.accounts.keys import Caller
from hearth.accounts.principal import Principal
from hearth.chat.images import IMAGE_TOKENS, ChatImages, with_parts
from hearth.chat.schemas import SAVE_EVERY_SECONDS, MessagePublic
from hearth.chat.service import Chats, title_from_text
from hearth.chat.titles import write_title
from hearth.engines.protocol import ChatCompletionRequest, ChatMessage, StreamOptions
from hearth.errors import HearthError, InvalidRequest
from hearth.gateway.context import (
    ANSWER_TOKENS,
    CHARS_PER_TOKEN,
    context_window,
    estimate_tokens,
)
from hearth.gateway.service import Gateway
from hearth.gateway.vision import vision
from hearth.rag.answer import Answerer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Defaults:
    """What a chat that sets nothing of its own answers with (the site's settings)."""

    system_prompt: str = ""
    k: int = 5  # passages from the chat's collections
    max_tokens: int = ANSWER_TOKENS


DEFAULTS = Defaults()


def _answer_ceiling(gateway: Gateway, model: str) -> int | None:
    """The model's own `max_tokens` ceiling, where its configuration sets one."""
    served = gateway.routes.find(model)
    if served is None:
        return None
    return getattr(served.deployments[0].model, "max_tokens", None)


@dataclass
class ChatEvent:
    type: Literal["question", "delta", "done", "error"]
    data: dict[str, Any] = field(default_factory=dict)


class ChatAnswers:
    def __init__(
        self,
        chats: Chats,
        gateway: Gateway,
        answerer: Answerer | None,
        images: ChatImages | None = None,
    ) -> None:
        self.chats = chats
        self.gateway = gateway
        self.answerer = answerer
        self.images = images
        self._saving: set[asyncio.Future[Any]] = set()

    async def ask(
        self,
        principal: Principal,
        chat_id: uuid.UUID,
        content: str,
        *,
        images: list[uuid.UUID] | None = None,
        defaults: Defaults = DEFAULTS,
    ) -> AsyncIterator[ChatEvent]:
        """Store the user's message (with the images uploaded for it), then answer it. A
        message with images to a model that does not read them is a 400 naming the model,
        before anything is stored or sent."""
        if images:
            chat = await self.chats.get(principal, chat_id)
            known = vision(self.gateway.routes, chat.model)
            if not known.reads_images:
                raise InvalidRequest(
                    f"The model '{chat.model}' cannot read images ({known.why_not}). Send "
                    "the message without them, or choose a model that reads images.",
                    param="images",
                )
        question = await self.chats.add_message(
            principal, chat_id, role="user", content=content, title_from=content, images=images
        )
        return await self._answer(principal, chat_id, question, defaults)

    async def regenerate(
        self,
        principal: Principal,
        chat_id: uuid.UUID,
        message_id: int,
        *,
        content: str | None = None,
        defaults: Defaults = DEFAULTS,
    ) -> AsyncIterator[ChatEvent]:
        """Answer user message `message_id` (or the question answer `message_id` follows)
        again, or, with `content`, a new version of that question: a new branch of the
        chat, the old one kept (`Chats.fork`)."""
        question = await self.chats.fork(principal, chat_id, message_id, content)
        return await self._answer(principal, chat_id, question, defaults)

    async def _answer(
        self,
        principal: Principal,
        chat_id: uuid.UUID,
        question: MessagePublic,
        defaults: Defaults,
    ) -> AsyncIterator[ChatEvent]:
        # The path to this question, whatever the chat shows meanwhile (another answer
        # being regenerated at the same time): only that branch goes to the model.
        chat, page = await self.chats.open(principal, chat_id, limit=200, leaf=question.id)
        history = page.items
        window = context_window(self.gateway.routes, chat.model)
        # The chat's own settings, else the site's; an answer never asks for more than half
        # the window (the rest is for the conversation) nor more than the model's ceiling.
        system_prompt = defaults.system_prompt if chat.system_prompt is None else chat.system_prompt
        answer_tokens = min(chat.max_tokens or defaults.max_tokens, window // 2)
        ceiling = _answer_ceiling(self.gateway, chat.model)
        if ceiling is not None:
            answer_tokens = min(answer_tokens, ceiling)
        k = defaults.k
        citations: list[dict[str, Any]] = []
        system = system_prompt
        if chat.collection_ids and self.answerer is not None:
            grounding = await self.answerer.ground(
                principal,
                chat.collection_ids,
                question.content,
                model=chat.model,
                k=k,
                reserve=estimate_tokens(question.content) + answer_tokens,
            )
            citations = [c.model_dump(mode="json") for c in grounding.citations]
            system = f"{system_prompt}\n\n{grounding.system}".strip()
        reads_images = vision(self.gateway.routes, chat.model).reads_images is True
        fitted = _fit(
            history, window - answer_tokens - estimate_tokens(system), images=reads_images
        )
        messages = await self._with_images(chat_id, fitted)
        if system:
            messages.insert(0, ChatMessage(role="system", content=system))
        request = ChatCompletionRequest(
            model=chat.model,
            messages=messages,
            stream=True,
            stream_options=StreamOptions(include_usage=True),
            max_tokens=answer_tokens,
            temperature=chat.temperature,
        )
        # The first exchange of a chat still named after its question: the model writes a
        # title once the answer is complete.
        placeholder = None
        if len(history) == 1 and chat.title == title_from_text(question.content):
            placeholder = chat.title
        return self._relay(
            principal, chat_id, question, request, citations, placeholder, fitted.context()
        )

    async def _relay(
        self,
        principal: Principal,
        chat_id: uuid.UUID,
        question: MessagePublic,
        request: ChatCompletionRequest,
        citations: list[dict[str, Any]],
        placeholder: str | None = None,
        context: dict[str, int] | None = None,
    ) -> AsyncIterator[ChatEvent]:
        # The question goes out at once: the model may take a while to start (a queue).
        yield ChatEvent(
            "question",
            {
                "message": question.model_dump(mode="json"),
                "citations": citations,
                # What did not fit in the model's window (absent when everything did).
                **({"context": context} if context else {}),
            },
        )
        parts: list[str] = []
        usage = None
        status, error = "stopped", None
        chunks: AsyncIterator[Any] | None = None
        # The answer's row exists from the start and its text is saved as it comes, so a
        # replica that dies mid-answer leaves the text so far (shown as interrupted).
        answer_row = await self.chats.add_message(
            principal,
            chat_id,
            role="assistant",
            content="",
            status="streaming",
            model=request.model,
            citations=citations or None,
            parent=question.id,
        )
        saver = asyncio.ensure_future(self._save_while_streaming(answer_row.id, parts))
        try:
            # The chat id as the session: a conversation stays on one deployment, whose
            # prefix cache then holds its history.
            chunks = await self.gateway.chat_stream(
                request, Caller.for_user(principal), session=str(chat_id)
            )
            looping = False
            async for chunk in chunks:
                if chunk.usage:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        yield ChatEvent("delta", {"text": choice.delta.content})
                if len(parts) % _LOOP_CHECK_EVERY == 0 and repeating(parts):
                    looping = True
                    break
            # Still "stopped" if the browser left (this generator is closed at a yield).
            status = "stopped" if looping else "complete"
            if looping:
                error = "Stopped: the model kept repeating itself."
        except HearthError as exc:
            status, error = "failed", exc.message
        finally:
            # Stored even when the browser went away (stop). The server cancels this
            # generator then, and keeps cancelling every await in it, so closing the
            # stream and saving run in a task of their own that the cancellation cannot
            # reach; only the wait for it is cancelled.
            saver.cancel()
            saved = asyncio.ensure_future(
                self._close_and_save(
                    chat_id, answer_row.id, chunks, "".join(parts), status, usage, error
                )
            )
            self._saving.add(saved)  # the loop holds tasks weakly
            saved.add_done_callback(self._saving.discard)
            answer = await asyncio.shield(saved)
        # Titled from any answer with text (one the guard stopped too), not a failed one.
        if placeholder is not None and status != "failed" and answer.content.strip():
            title = write_title(
                self.chats,
                self.gateway,
                principal,
                chat_id,
                model=request.model,
                question=question.content,
                answer=answer.content,
                placeholder=placeholder,
            )
            self._in_background(title)
        if error is not None:
            yield ChatEvent("error", {"message": error, "answer": answer.model_dump(mode="json")})
            return
        yield ChatEvent("done", {"message": answer.model_dump(mode="json")})

    async def _with_images(self, chat_id: uuid.UUID, fitted: Fitted) -> list[ChatMessage]:
        """The prompt's messages, those with images as OpenAI content parts."""
        wanted = [i for ids in fitted.images for i in ids]
        if not wanted or self.images is None:
            return fitted.messages
        urls = await self.images.contents(chat_id, wanted)
        return [
            with_parts(m, ids, urls) for m, ids in zip(fitted.messages, fitted.images, strict=True)
        ]

    def _in_background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._saving.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._saving.discard)

    async def _save_while_streaming(self, message_id: int, parts: list[str]) -> None:
        """Every few seconds, the text so far (and a fresh `updated_at`: this replica is
        alive), until the relay cancels it at the end."""
        saved = -1
        while True:
            await asyncio.sleep(SAVE_EVERY_SECONDS)
            try:
                # Saved even when nothing came (a queue ahead): the heartbeat is the point.
                await self.chats.save_partial(message_id, "".join(parts))
                saved = len(parts)
            except Exception:  # the final save still happens; this one is best effort
                log.warning("saving answer %s so far failed (%d parts)", message_id, saved)

    async def _close_and_save(
        self,
        chat_id: uuid.UUID,
        message_id: int,
        chunks: AsyncIterator[Any] | None,
        content: str,
        status: str,
        usage: Any,
        error: str | None,
    ) -> MessagePublic:
        if chunks is not None:
            try:
                await chunks.aclose()  # type: ignore[attr-defined]
            except Exception:  # the answer is kept whatever the engine does on close
                log.warning("closing the answer stream of chat %s failed", chat_id, exc_info=True)
        return await self.chats.finish_answer(
            message_id,
            content=content,
            status=status,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            error=error,
        )


# The repetition guard: a small model that loops ("A: A: A: ...", one sentence again and
# again) is stopped once the end of its answer is the same short stretch repeated: the
# last _LOOP_SPAN characters have a period of at most _LOOP_PERIOD characters.
_LOOP_SPAN = 600
_LOOP_PERIOD = 200
_LOOP_CHECK_EVERY = 16  # chunks


def repeating(parts: list[str]) -> bool:
    """Whether the text so far ends in one stretch of at most _LOOP_PERIOD characters
    repeated over its last _LOOP_SPAN (three times at least)."""
    tail = "".join(parts[-_LOOP_SPAN:])[-_LOOP_SPAN:]
    if len(tail) < _LOOP_SPAN:
        return False
    for period in range(1, _LOOP_PERIOD + 1):
        if tail[period:] == tail[:-period]:
            return True
    return False


@dataclass(frozen=True)
class Fitted:
    """The prompt's messages, and what did not fit in the window: said to the user, never
    dropped silently."""

    messages: list[ChatMessage]
    dropped: int = 0  # earlier messages left out
    cut: int = 0  # characters cut from the start of the question (longer than the window)
    images: list[list[uuid.UUID]] = field(default_factory=list)  # each message's, in order
    images_left_out: int = 0  # the kept messages' images, for a model that reads none

    def context(self) -> dict[str, int]:
        told = {"dropped": self.dropped, "cut": self.cut} if self.dropped or self.cut else {}
        if self.images_left_out:
            told["images"] = self.images_left_out
        return told


def _fit(history: list[MessagePublic], budget: int, *, images: bool = False) -> Fitted:
    """The latest messages that fit in `budget` tokens, oldest first; failed answers and
    empty stopped ones are left out of the prompt (and not counted as dropped). With
    `images` (a model that reads them) a message's images go with it, each counted as
    IMAGE_TOKENS; without, they are left out and counted."""
    usable = [
        m
        for m in history
        if not (m.role == "assistant" and (m.status == "failed" or not m.content))
    ]
    kept: list[ChatMessage] = []
    kept_images: list[list[uuid.UUID]] = []
    cut = left_out = 0
    for message in reversed(usable):
        pictures = [i.id for i in message.images] if images else []
        content = message.content
        cost = estimate_tokens(content) + IMAGE_TOKENS * len(pictures)
        if cost > budget:
            if kept:
                break
            # The question alone is longer than the window: keep its end.
            room = max(budget - IMAGE_TOKENS * len(pictures), 64)
            content = content[-room * CHARS_PER_TOKEN :]
            cut, cost = len(message.content) - len(content), budget
        budget -= cost
        left_out += 0 if images else len(message.images)
        kept.append(ChatMessage(role=message.role, content=content))  # type: ignore[arg-type]
        kept_images.append(pictures)
    kept.reverse()
    kept_images.reverse()
    return Fitted(
        kept,
        dropped=len(usable) - len(kept),
        cut=cut,
        images=kept_images,
        images_left_out=left_out,
    )
