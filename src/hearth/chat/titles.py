"""A chat's title, written by its own model from the first exchange, off the answer's path:
the answer is complete (and saved) before the title is asked for. Until then, and if the
model fails or says nothing usable, the chat keeps the first words of its first question;
a title the user set in the meantime is never overwritten (compare-and-set).
"""

from __future__ import annotations

import logging
import re
import uuid

from hearth.accounts.keys import Caller
from hearth.accounts.principal import Principal
from hearth.chat.service import Chats
from hearth.engines.protocol import ChatCompletionRequest, ChatMessage
from hearth.errors import HearthError
from hearth.gateway.service import Gateway

log = logging.getLogger(__name__)

TITLE_TOKENS = 20
MAX_TITLE_CHARS = 60
_EXCERPT_CHARS = 1200  # of the question and of the answer: enough to say what it is about
_PROMPT = (
    "Write a title of at most six words for the conversation below. Reply with the title "
    "only: no quotes, no full stop.\n\nUser: {question}\n\nAssistant: {answer}"
)
_LABEL = re.compile(r"^\s*(title|chat title)\s*:\s*", re.IGNORECASE)
_EDGES = "\"'`*#_ .:;-\u2013\u2014"  # and the en and em dashes


def clean_title(text: str) -> str | None:
    """The title in a model's reply: its first non-empty line without a "Title:" label,
    quotes, Markdown marks or a full stop; None if nothing usable is left."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    title = " ".join(_LABEL.sub("", line).split()).strip(_EDGES)
    if not title or len(title) > 2 * MAX_TITLE_CHARS:
        return None
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return title


async def write_title(
    chats: Chats,
    gateway: Gateway,
    principal: Principal,
    chat_id: uuid.UUID,
    *,
    model: str,
    question: str,
    answer: str,
    placeholder: str,
) -> None:
    """Ask `model` for a title and set it if the chat is still called `placeholder`.
    Never raises: a chat keeps its placeholder when this fails."""
    prompt = _PROMPT.format(question=question[:_EXCERPT_CHARS], answer=answer[:_EXCERPT_CHARS])
    request = ChatCompletionRequest(
        model=model,
        messages=[ChatMessage(role="user", content=prompt)],
        max_tokens=TITLE_TOKENS,
        temperature=0,
    )
    try:
        reply = await gateway.chat(request, Caller.for_user(principal), session=str(chat_id))
        title = clean_title(reply.choices[0].message.content or "") if reply.choices else None
        if title is not None:
            await chats.retitle(principal, chat_id, title, only_if=placeholder)
    except HearthError as exc:
        log.info("no title for chat %s from %s: %s", chat_id, model, exc.message)
    except Exception:
        log.warning("writing a title for chat %s failed", chat_id, exc_info=True)
