"""A chat's messages as a tree, in SQL: each message follows its `parent_id`, and the chat
shows (and answers from) the path from its first message down to its active leaf,
`chat.current_message_id`. Regenerating an answer adds a sibling under the same question;
editing a question adds a sibling under the same parent; nothing is deleted.

Along a path ids grow (a message is stored after the one it follows), so a path read
leaf first is newest first, and `before` pages back through it as through a line. Every
step of a walk is joined on the chat's id too: a walk never leaves its chat.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CTE, Select, and_, func, literal, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from hearth.chat.models import Chat, ChatShare, Message
from hearth.chat.schemas import MessagePublic
from hearth.errors import NotFound


def active_leaf() -> ColumnElement[Any]:
    """The chat's active leaf (of the `Chat` row in the statement); its newest message if
    none is recorded."""
    newest = aliased(Message)
    return func.coalesce(
        Chat.current_message_id,
        select(func.max(newest.id)).where(newest.chat_id == Chat.id).scalar_subquery(),
    )


def start_at() -> Select[Any]:
    """The first row of a walk up: one message (the caller says which, with `where`)."""
    return select(Message.id, Message.parent_id, Message.chat_id, literal(0).label("depth"))


def walk_up(start: Select[Any], name: str = "path") -> CTE:
    """The path from the message `start` selects up to its chat's first message, as rows
    (id, parent_id, chat_id, depth), `depth` 0 at the start."""
    path = start.cte(name, recursive=True)
    step = aliased(Message)
    return path.union_all(
        select(step.id, step.parent_id, step.chat_id, path.c.depth + 1).where(
            step.id == path.c.parent_id, step.chat_id == path.c.chat_id
        )
    )


def active_path(chat_id: uuid.UUID, owner_id: str) -> CTE:
    """The path of the owner's chat, from its active leaf up (nothing if not theirs)."""
    return walk_up(
        start_at()
        .join(Chat, Chat.id == Message.chat_id)
        .where(Chat.id == chat_id, Chat.owner_id == owner_id, Message.id == active_leaf())
    )


def path_to(chat_id: uuid.UUID, message_id: int) -> CTE:
    """The path from message `message_id` of the chat up (nothing if it is not the chat's)."""
    return walk_up(start_at().where(Message.chat_id == chat_id, Message.id == message_id))


def shared_path(token: str) -> CTE:
    """The path a live link shows: up from the leaf it was made with, in its own chat
    (nothing for a wrong or revoked token)."""
    return walk_up(
        start_at()
        .join(ChatShare, ChatShare.chat_id == Message.chat_id)
        .where(
            ChatShare.token == token,
            ChatShare.revoked_at.is_(None),
            Message.id == ChatShare.last_message_id,
        ),
        name="shared_path",
    )


def page_of(path: CTE, *, before: int | None, limit: int) -> Any:
    """The newest `limit` + 1 messages of a path older than `before` (a subquery of id and
    depth, newest first by depth)."""
    page = select(path.c.id, path.c.depth)
    if before is not None:
        page = page.where(path.c.id < before)
    return page.order_by(path.c.depth).limit(limit + 1).subquery("page")


def sibling_ids() -> ColumnElement[Any]:
    """The ids of the `Message` row's siblings, itself included, oldest first (an array)."""
    sibling = aliased(Message)
    same_parent = or_(
        sibling.parent_id == Message.parent_id,
        and_(sibling.parent_id.is_(None), Message.parent_id.is_(None)),
    )
    return (
        select(func.array_agg(aggregate_order_by(sibling.id, sibling.id)))
        .where(sibling.chat_id == Message.chat_id, same_parent)
        .scalar_subquery()
        .label("sibling_ids")
    )


async def message_of(session: AsyncSession, chat_id: uuid.UUID, message_id: int) -> Message:
    """Message `message_id` if it is the chat's (a message of another chat is not found)."""
    message = await session.scalar(
        select(Message).where(Message.chat_id == chat_id, Message.id == message_id)
    )
    if message is None:
        raise NotFound(f"no message {message_id} in chat {chat_id}")
    return message


def on_path(message: Message, siblings: list[int] | None) -> MessagePublic:
    """A message of the path shown, with its place among its siblings (the arrows "< 2/3 >")."""
    public = MessagePublic.model_validate(message)
    ids = siblings or [message.id]
    at = ids.index(message.id) if message.id in ids else 0
    public.sibling_index, public.siblings = at + 1, len(ids)
    public.previous_sibling = ids[at - 1] if at > 0 else None
    public.next_sibling = ids[at + 1] if at + 1 < len(ids) else None
    return public


def newest_below(chat_id: uuid.UUID, message_id: int) -> Select[Any]:
    """The newest message at or below message `message_id` of the chat: a leaf, since
    whatever follows a message is newer (null if the message is not the chat's)."""
    below = (
        select(Message.id, Message.chat_id)
        .where(Message.chat_id == chat_id, Message.id == message_id)
        .cte("below", recursive=True)
    )
    child = aliased(Message)
    below = below.union_all(
        select(child.id, child.chat_id).where(
            child.parent_id == below.c.id, child.chat_id == below.c.chat_id
        )
    )
    return select(func.max(below.c.id))


def chats_whose_path_matches(owner_id: str, words: ColumnElement[Any]) -> Select[Any]:
    """The ids of the owner's chats with a message matching `words` on their active path
    (text only in another branch does not count): the matching messages first (the
    full-text index), then the paths of their chats only."""
    hit = (
        select(Message.id, Message.chat_id)
        .join(Chat, Chat.id == Message.chat_id)
        .where(Chat.owner_id == owner_id, Message.tsv.op("@@")(words))
        .cte("hit")
    )
    paths = walk_up(
        start_at()
        .join(Chat, Chat.id == Message.chat_id)
        .where(Chat.id.in_(select(hit.c.chat_id)), Message.id == active_leaf()),
        name="hit_path",
    )
    return select(hit.c.chat_id).join(
        paths, and_(paths.c.id == hit.c.id, paths.c.chat_id == hit.c.chat_id)
    )
