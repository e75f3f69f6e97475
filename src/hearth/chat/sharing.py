"""Links that share a chat, read-only, with the site's signed-in users (as Open WebUI's
"Share chat" does), until the owner revokes them.

A link is a snapshot: it shows the path of messages the chat showed when it was made (from
its first message down to its active leaf then), stored as that leaf's id, not as copies:
the path is walked up from it through each message's parent. Messages are never changed
or deleted but with their chat (regenerating or editing adds a branch), so what the owner
writes afterwards, on this branch or another, stays private, and switching branches does
not change the link (revoke and share again to show the chat as it is now). Sharing again
hands out the same link while it is live.

The token is the permission: 32 random bytes (256 bits) from `secrets`, looked up in the
same SQL that reads the chat, together with "not revoked". It is stored as it is (the owner
can copy the link again later); it opens nothing without a session on this site.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.accounts.principal import Principal
from hearth.chat import tree
from hearth.chat.images import listed_images, shown
from hearth.chat.models import Chat, ChatShare, Message
from hearth.chat.schemas import SharedChat
from hearth.db.session import Database
from hearth.errors import InvalidRequest, NotFound

TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 64  # the column; token_urlsafe(32) writes 43


@dataclass(frozen=True)
class ShareLink:
    """A live link as its owner sees it (the route adds the site's address)."""

    token: str
    messages: int  # the messages it shows
    created_at: datetime

    @property
    def path(self) -> str:
        return f"/s/{self.token}"


class ChatShares:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def share(self, principal: Principal, chat_id: uuid.UUID) -> tuple[ShareLink, bool]:
        """The chat's live link, made now if it has none; and whether it was made now."""
        async with self.database.session() as session:
            # The chat's row, locked: two "Share" clicks at once make one link, not two.
            owned = await session.scalar(
                select(Chat.id)
                .where(Chat.id == chat_id, Chat.owner_id == principal.user_id)
                .with_for_update()
            )
            if owned is None:
                raise NotFound(f"no chat {chat_id}")
            existing = await session.scalar(_live(chat_id))
            if existing is not None:
                return await _link(session, existing), False
            last = await session.scalar(select(tree.active_leaf()).where(Chat.id == chat_id))
            if last is None:
                raise InvalidRequest("This chat has no messages yet: there is nothing to share.")
            share = ChatShare(
                token=secrets.token_urlsafe(TOKEN_BYTES),
                chat_id=chat_id,
                created_by=principal.user_id,
                last_message_id=last,
            )
            session.add(share)
            await session.flush()
            await session.refresh(share)
            link = await _link(session, share)
            await session.commit()
            return link, True

    async def link(self, principal: Principal, chat_id: uuid.UUID) -> ShareLink:
        """The chat's live link; NotFound when it has none (or is not the caller's)."""
        async with self.database.read() as session:
            share = await session.scalar(
                _live(chat_id)
                .join(Chat, Chat.id == ChatShare.chat_id)
                .where(Chat.owner_id == principal.user_id)
            )
            if share is None:
                raise NotFound(f"chat {chat_id} has no live link")
            return await _link(session, share)

    async def revoke(self, principal: Principal, chat_id: uuid.UUID) -> None:
        """End the chat's live link (it opens nothing from now on); a chat with none is
        left as it is."""
        async with self.database.session() as session:
            owned = await session.scalar(
                select(Chat.id).where(Chat.id == chat_id, Chat.owner_id == principal.user_id)
            )
            if owned is None:
                raise NotFound(f"no chat {chat_id}")
            await session.execute(
                update(ChatShare)
                .where(ChatShare.chat_id == chat_id, ChatShare.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
            await session.commit()

    async def read(self, token: str, *, before: int | None = None, limit: int = 50) -> SharedChat:
        """What a live link shows, to anyone signed in: the chat's title and the latest
        `limit` messages of the path it was made with (older than `before`), oldest first."""
        if len(token) > MAX_TOKEN_CHARS:
            raise NotFound("no such shared chat")
        limit = max(1, min(limit, 500))
        # One statement: the live link (token, not revoked), its chat, and the path up
        # from the leaf it was made with.
        path = tree.shared_path(token)
        page = tree.page_of(path, before=before, limit=limit)
        statement = (
            select(ChatShare.created_at, Chat.title, Chat.model, Message, listed_images(Message.id))
            .select_from(ChatShare)
            .join(Chat, Chat.id == ChatShare.chat_id)
            .outerjoin(page, true())
            .outerjoin(Message, and_(Message.id == page.c.id, Message.chat_id == Chat.id))
            .where(ChatShare.token == token, ChatShare.revoked_at.is_(None))
            .order_by(page.c.depth)
        )
        async with self.database.read() as session:
            rows = (await session.execute(statement)).all()
        if not rows:
            raise NotFound("no such shared chat (the link is wrong, or was revoked)")
        shared_at, title, model = rows[0][:3]
        # With their images' ids (read at /api/shared/{token}/images/{id}, the link checked).
        messages = [(row[3], row[4]) for row in rows if row[3] is not None]
        more = len(messages) > limit
        messages = messages[:limit]
        messages.reverse()
        return SharedChat(
            title=title,
            model=model,
            shared_at=shared_at,
            messages=[shown(m, images) for m, images in messages],
            earlier=messages[0][0].id if more else None,
        )


def _live(chat_id: uuid.UUID) -> Select[tuple[ChatShare]]:
    return select(ChatShare).where(ChatShare.chat_id == chat_id, ChatShare.revoked_at.is_(None))


async def _link(session: AsyncSession, share: ChatShare) -> ShareLink:
    path = tree.path_to(share.chat_id, share.last_message_id)
    count = await session.scalar(select(func.count()).select_from(path))
    return ShareLink(share.token, int(count or 0), share.created_at)
