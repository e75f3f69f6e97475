"""Conversations: list, open, rename, archive, delete and export; messages stored and
paged, as a tree whose active path is what the chat shows (`chat/tree.py`). Every query
filters by the owner inside its SQL, so another user's chat id is simply not found.

Regenerating, editing and switching branch live in `chat/branches.py` (its methods are
the chats'), answering in `chat/answers.py`, importing in `chat/importers.py`, links that
share a chat in `chat/sharing.py`, tags' queries in `chat/tags.py`; this module is storage
only.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import and_, delete, func, or_, select, true, update

from hearth.accounts.principal import Principal
from hearth.chat import tags as chat_tags
from hearth.chat import tree
from hearth.chat.branches import ChatBranches
from hearth.chat.images import bind, exported, listed_images, shown, with_images
from hearth.chat.models import SEARCH_CONFIG, Chat, Message
from hearth.chat.schemas import (
    STALE_STREAM_SECONDS,
    ChatCreate,
    ChatExport,
    ChatPublic,
    ChatsPage,
    ChatUpdate,
    ExportedMessage,
    MessagePublic,
    MessagesPage,
    TagCount,
)
from hearth.db.session import Database
from hearth.errors import InvalidRequest, NotFound

NEW_CHAT_TITLE = "New chat"


class Chats(ChatBranches):
    def __init__(self, database: Database) -> None:
        self.database = database

    async def create(self, principal: Principal, body: ChatCreate, *, model: str) -> ChatPublic:
        chat = Chat(
            id=uuid.uuid4(),
            owner_id=principal.user_id,
            title=body.title.strip() or NEW_CHAT_TITLE,
            model=model,
            archived=False,
            collection_ids=list(body.collection_ids),
            system_prompt=body.system_prompt,
            temperature=body.temperature,
            max_tokens=body.max_tokens,
            preset_id=body.preset_id,
        )
        async with self.database.session() as session:
            session.add(chat)
            await session.commit()
            return ChatPublic.model_validate(chat)

    async def list(
        self,
        principal: Principal,
        *,
        query: str = "",
        archived: bool = False,
        tag: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ChatsPage:
        """The caller's chats: the first page starts with the pinned ones, then the rest
        most recently active first, a page at a time (keyset pagination: the thousandth
        page costs what the first does; later pages hold unpinned chats only). `query`
        matches titles and the text of the messages shown (the active path's), and its
        `tag:name` terms, like `tag`, keep the chats with that tag."""
        limit = max(1, min(limit, 200))
        query, tags = chat_tags.split_query(query)
        statement = (
            select(Chat)
            .where(Chat.owner_id == principal.user_id, Chat.archived.is_(archived))
            .order_by(Chat.pinned.desc(), Chat.updated_at.desc(), Chat.id.desc())
            .limit(limit + 1)
            .options(chat_tags.with_tags())
        )
        for name in [*tags, tag] if tag else tags:
            statement = statement.where(chat_tags.tagged(name))
        if cursor:
            updated_at, chat_id = _decode_cursor(cursor)
            statement = statement.where(
                Chat.pinned.is_(False),
                or_(
                    Chat.updated_at < updated_at,
                    (Chat.updated_at == updated_at) & (Chat.id < chat_id),
                ),
            )
        if query.strip():
            words = func.websearch_to_tsquery(SEARCH_CONFIG, query)
            in_messages = Chat.id.in_(tree.chats_whose_path_matches(principal.user_id, words))
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(or_(Chat.title.ilike(pattern + "%"), in_messages))
        async with self.database.read() as session:
            rows = list(await session.scalars(statement))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more:
            last = rows[-1]
            # A first page of pinned chats only: the next page starts at the newest unpinned.
            next_cursor = (
                _encode_cursor(_LATEST, uuid.UUID(int=(1 << 128) - 1))
                if last.pinned
                else _encode_cursor(last.updated_at, last.id)
            )
        return ChatsPage(
            items=[ChatPublic.model_validate(c) for c in rows], next_cursor=next_cursor
        )

    async def get(self, principal: Principal, chat_id: uuid.UUID) -> ChatPublic:
        async with self.database.read() as session:
            chat = await session.scalar(_owned(principal, chat_id).options(chat_tags.with_tags()))
        if chat is None:
            raise NotFound(f"no chat {chat_id}")
        return ChatPublic.model_validate(chat)

    async def update(
        self, principal: Principal, chat_id: uuid.UUID, body: ChatUpdate
    ) -> ChatPublic:
        values = body.model_dump(exclude_unset=True)
        tags = values.pop("tags", None)
        if "title" in values:
            values["title"] = values["title"].strip() or NEW_CHAT_TITLE
        async with self.database.session() as session:
            chat = await session.scalar(
                _owned(principal, chat_id).with_for_update().options(chat_tags.with_tags())
            )
            if chat is None:
                raise NotFound(f"no chat {chat_id}")
            kept = chat.tags or []  # read now: the flush of other changes forgets them
            for name, value in values.items():
                setattr(chat, name, value)
            if tags is not None:  # tagging does not move the chat in the list
                kept = await chat_tags.replace(session, principal, chat_id, tags)
            await session.commit()
            public = ChatPublic.model_validate(chat)
        public.tags = kept
        return public

    async def tags(self, principal: Principal, *, archived: bool = False) -> list[TagCount]:
        """The caller's tags, each with how many of their chats (or archived chats) carry
        it."""
        async with self.database.read() as session:
            return await chat_tags.counts(session, principal, archived=archived)

    async def retitle(
        self, principal: Principal, chat_id: uuid.UUID, title: str, *, only_if: str
    ) -> bool:
        """Set the chat's title if it is still `only_if` (a generated title never replaces
        one the user gave meanwhile); whether it was set."""
        async with self.database.session() as session:
            result = await session.execute(
                update(Chat)
                .where(
                    Chat.id == chat_id,
                    Chat.owner_id == principal.user_id,
                    Chat.title == only_if,
                )
                .values(title=title)
            )
            await session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def forget_presets(self, preset_ids: list[uuid.UUID]) -> None:
        """Presets deleted: the chats started from them keep what they copied."""
        async with self.database.session() as session:
            await session.execute(
                update(Chat).where(Chat.preset_id.in_(preset_ids)).values(preset_id=None)
            )
            await session.commit()

    async def erase_owner(self, user_id: str) -> None:
        """Delete every chat of an account being deleted (with their messages)."""
        async with self.database.session() as session:
            await session.execute(delete(Chat).where(Chat.owner_id == user_id))
            await session.commit()

    async def delete(self, principal: Principal, chat_id: uuid.UUID) -> None:
        async with self.database.session() as session:
            result = await session.execute(
                delete(Chat).where(Chat.id == chat_id, Chat.owner_id == principal.user_id)
            )
            await session.commit()
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound(f"no chat {chat_id}")

    async def messages(
        self,
        principal: Principal,
        chat_id: uuid.UUID,
        *,
        before: int | None = None,
        limit: int = 50,
    ) -> MessagesPage:
        """The newest `limit` messages of the chat's path (older than `before`), oldest
        first: a long chat opens at its end and loads earlier messages on demand."""
        return (await self.open(principal, chat_id, before=before, limit=limit))[1]

    async def open(
        self,
        principal: Principal,
        chat_id: uuid.UUID,
        *,
        before: int | None = None,
        limit: int = 50,
        leaf: int | None = None,
    ) -> tuple[ChatPublic, MessagesPage]:
        """A chat and the latest messages of its path in one query (the chat page's one
        round trip for the conversation): the path to its active leaf, or to message
        `leaf` of it (the question being answered), each message with its siblings."""
        limit = max(1, min(limit, 500))
        path = (
            tree.active_path(chat_id, principal.user_id)
            if leaf is None
            else tree.path_to(chat_id, leaf)
        )
        page = tree.page_of(path, before=before, limit=limit)
        statement = (
            select(Chat, Message, tree.sibling_ids(), listed_images(Message.id))
            .select_from(Chat)
            .outerjoin(page, true())
            .outerjoin(Message, and_(Message.id == page.c.id, Message.chat_id == Chat.id))
            .where(Chat.id == chat_id, Chat.owner_id == principal.user_id)
            .order_by(page.c.depth)
            .options(chat_tags.with_tags())
        )
        async with self.database.read() as session:
            rows = (await session.execute(statement)).all()
        if not rows:
            raise NotFound(f"no chat {chat_id}")
        chat = ChatPublic.model_validate(rows[0][0])
        messages = [(m, ids, images) for _, m, ids, images in rows if m is not None]
        more = len(messages) > limit
        messages = messages[:limit]
        messages.reverse()
        page_shown = MessagesPage(
            items=[shown(tree.on_path(m, ids), images) for m, ids, images in messages],
            earlier=messages[0][0].id if more else None,
        )
        return chat, page_shown

    async def save_partial(self, message_id: int, content: str) -> None:
        """The text so far of an answer still streaming (its owner checked at its start)."""
        async with self.database.session() as session:
            await session.execute(
                update(Message)
                .where(Message.id == message_id, Message.status == "streaming")
                .values(content=content, updated_at=func.now())
            )
            await session.commit()

    async def finish_answer(
        self,
        message_id: int,
        *,
        content: str,
        status: str,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        error: str | None,
    ) -> MessagePublic:
        """An answer's end: its whole text and its status."""
        async with self.database.session() as session:
            message = await session.get(Message, message_id)
            if message is None:
                raise NotFound(f"no message {message_id}")  # its chat was deleted meanwhile
            message.content, message.status, message.error = content, status, error
            message.prompt_tokens, message.completion_tokens = prompt_tokens, completion_tokens
            message.updated_at = func.now()
            await session.execute(
                update(Chat).where(Chat.id == message.chat_id).values(updated_at=func.now())
            )
            await session.commit()
            await session.refresh(message)
            return MessagePublic.model_validate(message)

    async def mark_interrupted(self, older_than: float = STALE_STREAM_SECONDS) -> int:
        """Answers left `streaming` by replicas that died (nothing saved for `older_than`
        seconds) become `interrupted`, keeping the text saved so far; how many."""
        async with self.database.session() as session:
            result = await session.execute(
                update(Message)
                .where(
                    Message.status == "streaming",
                    Message.updated_at < func.now() - timedelta(seconds=older_than),
                )
                .values(status="interrupted")
            )
            await session.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def add_message(
        self,
        principal: Principal,
        chat_id: uuid.UUID,
        *,
        role: str,
        content: str,
        status: str = "complete",
        model: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        citations: list[dict] | None = None,
        error: str | None = None,
        title_from: str | None = None,
        parent: int | Literal["current"] | None = "current",
        images: list[uuid.UUID] | None = None,
    ) -> MessagePublic:
        """Add a message after `parent` (by default the chat's active leaf: a message sent
        continues the branch shown), make it the active leaf, and move the chat to the
        top of the list; a chat still called "New chat" takes its title from `title_from`
        (the first question). `images` (uploaded to this chat, not sent yet) go with it,
        or nothing is stored (400)."""
        async with self.database.session() as session:
            # Locked: two messages added at once each see the other's (the tree holds).
            chat = await session.scalar(_owned(principal, chat_id).with_for_update())
            if chat is None:
                raise NotFound(f"no chat {chat_id}")
            if parent == "current":
                parent = await session.scalar(select(tree.active_leaf()).where(Chat.id == chat_id))
            elif parent is not None:
                await tree.message_of(session, chat_id, parent)
            message = Message(
                chat_id=chat_id,
                parent_id=parent,
                role=role,
                content=content,
                status=status,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                citations=citations,
                error=error,
            )
            session.add(message)
            await session.flush()
            chat.current_message_id = message.id
            chat.updated_at = func.now()
            if title_from and chat.title == NEW_CHAT_TITLE:
                chat.title = title_from_text(title_from)
            if images:
                await bind(session, chat_id, message.id, images)
            public = MessagePublic.model_validate(message)
            if images:
                await with_images(session, [public])
            await session.commit()
            return public

    async def export(self, principal: Principal, chat_id: uuid.UUID) -> ChatExport:
        """The chat with every message of every branch, each after the one it follows
        (ids grow down a path) and naming it by its place; and its active leaf."""
        async with self.database.read() as session:
            chat = await session.scalar(_owned(principal, chat_id).options(chat_tags.with_tags()))
            if chat is None:
                raise NotFound(f"no chat {chat_id}")
            rows = list(
                await session.scalars(
                    select(Message).where(Message.chat_id == chat_id).order_by(Message.id)
                )
            )
            place = {m.id: n for n, m in enumerate(rows, 1)}
            images = await exported(session, chat_id)
            messages = [
                ExportedMessage(
                    parent=place.get(m.parent_id) if m.parent_id is not None else None,
                    role=m.role,  # type: ignore[arg-type]
                    content=m.content,
                    status="interrupted" if m.status == "streaming" else m.status,  # type: ignore[arg-type]
                    model=m.model,
                    error=m.error,
                    citations=m.citations,
                    created_at=m.created_at,
                    images=images.get(m.id, []),
                )
                for m in rows
            ]
        return ChatExport(
            title=chat.title,
            model=chat.model,
            archived=chat.archived,
            pinned=chat.pinned,
            tags=chat.tags or [],
            created_at=chat.created_at,
            updated_at=chat.updated_at,
            messages=messages,
            current=place.get(chat.current_message_id or 0),
            system_prompt=chat.system_prompt,
            temperature=chat.temperature,
            max_tokens=chat.max_tokens,
        )


def export_markdown(data: ChatExport) -> str:
    """The conversation as the chat shows it: its active path (other branches left out)."""
    lines = [f"# {data.title}", "", f"Model: {data.model}", ""]
    for message in data.path():
        lines += [f"## {'You' if message.role == 'user' else 'Assistant'}", "", message.content, ""]
        if message.images:  # Markdown holds no bytes: said, and kept in the JSON export
            count = len(message.images)
            lines += [f"_({count} image{'s' if count > 1 else ''}: in the JSON export)_", ""]
    return "\n".join(lines)


def _owned(principal: Principal, chat_id: uuid.UUID):  # type: ignore[no-untyped-def]
    return select(Chat).where(Chat.id == chat_id, Chat.owner_id == principal.user_id)


def title_from_text(text: str) -> str:
    """A chat's first title: the first words of its first question."""
    words = " ".join(text.split())
    return words if len(words) <= 60 else words[:57].rstrip() + "…"


_LATEST = datetime(9999, 12, 31, tzinfo=UTC)


def _encode_cursor(updated_at: datetime, chat_id: uuid.UUID) -> str:
    raw = f"{updated_at.isoformat()}|{chat_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, chat_id = raw.partition("|")
        return datetime.fromisoformat(stamp), uuid.UUID(chat_id)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("bad cursor", param="cursor") from None
