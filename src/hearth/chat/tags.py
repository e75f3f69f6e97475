"""Chat tags: the owner's labels on their chats, several a chat (as Open WebUI's), to find
chats by. The list filters by a tag (`?tag=`, or `tag:name` in a search), each chat lists
its tags, and the caller's tags come with how many of their chats carry each.

Tags belong to a chat, so every query reaches them through a chat its caller owns: one
user's tags never show, count or filter another's chats. A tag is told apart from the
others by its key (the name case-folded, `schemas.tag_key`), and spelt as its owner first
spelt it: tagging a chat "work" when other chats carry "Work" tags it "Work".
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import ColumnElement, ScalarSelect, delete, exists, func, insert, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import with_expression
from sqlalchemy.sql.base import ExecutableOption

from hearth.accounts.principal import Principal
from hearth.chat.models import Chat, ChatTag
from hearth.chat.schemas import TagCount, tag_key

# `tag:work` or `tag:"long name"` in a search names a tag the chats must carry.
_TERM = re.compile(r'(?<!\S)tag:(?:"([^"]*)"|(\S+))', re.IGNORECASE)


def _names() -> ScalarSelect[list[str]]:
    # Correlated to the chat row being read: its tags' names in alphabetical order (null
    # when it has none). One probe of chat_tag's primary key per chat.
    ordered = aggregate_order_by(ChatTag.name, ChatTag.key)
    return (
        select(func.array_agg(ordered))
        .where(ChatTag.chat_id == Chat.id)
        .correlate(Chat)
        .scalar_subquery()
    )


def with_tags() -> ExecutableOption:
    """The option a query of chats takes to read each chat's tags with it (`Chat.tags`)."""
    return with_expression(Chat.tags, _names())


def tagged(name: str) -> ColumnElement[bool]:
    """The chat (of the query, which filters by owner) carries the tag `name`."""
    return exists().where(ChatTag.chat_id == Chat.id, ChatTag.key == tag_key(name))


def split_query(query: str) -> tuple[str, list[str]]:
    """A search's words apart from the tags it names (`tag:name`, `tag:"two words"`)."""
    names = [quoted or bare for quoted, bare in _TERM.findall(query)]
    return _TERM.sub(" ", query).strip(), [n for n in names if n.strip()]


async def replace(
    session: AsyncSession, principal: Principal, chat_id: uuid.UUID, names: list[str]
) -> list[str]:
    """Make `names` (normalised and deduplicated by the schema) the chat's tags, in the
    caller's transaction, which has checked the chat is theirs; the names, as stored."""
    spelt = {tag_key(name): name for name in names}
    if spelt:
        known = await session.execute(
            select(ChatTag.key, func.min(ChatTag.name))
            .join(Chat, Chat.id == ChatTag.chat_id)
            .where(
                Chat.owner_id == principal.user_id,
                ChatTag.chat_id != chat_id,
                ChatTag.key.in_(spelt),
            )
            .group_by(ChatTag.key)
        )
        spelt.update({key: name for key, name in known.all()})
    await session.execute(delete(ChatTag).where(ChatTag.chat_id == chat_id))
    if spelt:
        await session.execute(
            insert(ChatTag),
            [{"chat_id": chat_id, "key": key, "name": name} for key, name in spelt.items()],
        )
    return [spelt[key] for key in sorted(spelt)]


async def counts(session: AsyncSession, principal: Principal, *, archived: bool) -> list[TagCount]:
    """The caller's tags on their chats (archived ones, or the others), alphabetically,
    each with how many chats carry it."""
    rows = await session.execute(
        select(func.min(ChatTag.name), func.count())
        .join(Chat, Chat.id == ChatTag.chat_id)
        .where(Chat.owner_id == principal.user_id, Chat.archived.is_(archived))
        .group_by(ChatTag.key)
        .order_by(ChatTag.key)
    )
    return [TagCount(name=name, chats=chats) for name, chats in rows.all()]
