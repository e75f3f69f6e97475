"""Conversations: list, open, rename, archive, delete and export; messages stored and
paged. Every query filters by the owner inside its SQL, so another user's chat id is
simply not found.

Answering lives in `chat/answers.py`, importing in `chat/importers.py`, links that share a
chat in `chat/sharing.py`; this module is storage only.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, func, or_, select, true, update
from sqlalchemy.orm import aliased

from hearth.accounts.principal import Principal
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
)
from hearth.db.session import Database
from hearth.errors import InvalidRequest, NotFound

NEW_CHAT_TITLE = "New chat"


class Chats:
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
        cursor: str | None = None,
        limit: int = 50,
    ) -> ChatsPage:
        """The caller's chats: the first page starts with the pinned ones, then the rest
        most recently active first, a page at a time (keyset pagination: the thousandth
        page costs what the first does; later pages hold unpinned chats only). `query`
        matches titles and message text."""
        limit = max(1, min(limit, 200))
        statement = (
            select(Chat)
            .where(Chat.owner_id == principal.user_id, Chat.archived.is_(archived))
            .order_by(Chat.pinned.desc(), Chat.updated_at.desc(), Chat.id.desc())
            .limit(limit + 1)
        )
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
            in_messages = exists().where(Message.chat_id == Chat.id, Message.tsv.op("@@")(words))
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
            chat = await session.scalar(_owned(principal, chat_id))
        if chat is None:
            raise NotFound(f"no chat {chat_id}")
        return ChatPublic.model_validate(chat)

    async def update(
        self, principal: Principal, chat_id: uuid.UUID, body: ChatUpdate
    ) -> ChatPublic:
        values = body.model_dump(exclude_unset=True)
        if "title" in values:
            values["title"] = values["title"].strip() or NEW_CHAT_TITLE
        async with self.database.session() as session:
            chat = await session.scalar(_owned(principal, chat_id).with_for_update())
            if chat is None:
                raise NotFound(f"no chat {chat_id}")
            for name, value in values.items():
                setattr(chat, name, value)
            await session.commit()
            return ChatPublic.model_validate(chat)

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
        """The newest `limit` messages (older than `before`), oldest first: a long chat opens
        at its end and loads earlier messages on demand."""
        limit = max(1, min(limit, 500))
        # Filtered on chat_message.chat_id itself, so the (chat_id, id) index serves it
        # backwards from the newest message, however long the chat.
        statement = (
            select(Message, listed_images(Message.id))
            .join(Chat, Chat.id == Message.chat_id)
            .where(
                Message.chat_id == chat_id, Chat.id == chat_id, Chat.owner_id == principal.user_id
            )
            .order_by(Message.id.desc())
            .limit(limit + 1)
        )
        if before is not None:
            statement = statement.where(Message.id < before)
        async with self.database.read() as session:
            rows = list((await session.execute(statement)).all())
            if not rows:
                # No rows: an empty chat or page, or not the caller's chat (NotFound then,
                # whatever `before` says, so a page never tells whether a chat exists).
                await self.get(principal, chat_id)
        more = len(rows) > limit
        rows = rows[:limit]
        rows.reverse()
        return MessagesPage(
            items=[shown(m, images) for m, images in rows],
            earlier=rows[0][0].id if more else None,
        )

    async def open(
        self,
        principal: Principal,
        chat_id: uuid.UUID,
        *,
        before: int | None = None,
        limit: int = 50,
    ) -> tuple[ChatPublic, MessagesPage]:
        """A chat and its latest messages in one query (the chat page's one round trip for
        the conversation)."""
        limit = max(1, min(limit, 500))
        # LATERAL: the latest messages of this one chat, read from the (chat_id, id) index
        # backwards, then joined to the chat row (which also checks the owner).
        latest = select(Message).where(Message.chat_id == Chat.id)
        if before is not None:
            latest = latest.where(Message.id < before)
        latest = latest.order_by(Message.id.desc()).limit(limit + 1).lateral("latest")
        message = aliased(Message, latest)
        statement = (
            select(Chat, message, listed_images(latest.c.id))
            .outerjoin(latest, true())
            .where(Chat.id == chat_id, Chat.owner_id == principal.user_id)
            .order_by(latest.c.id.desc())
        )
        async with self.database.read() as session:
            rows = (await session.execute(statement)).all()
        if not rows:
            raise NotFound(f"no chat {chat_id}")
        chat = ChatPublic.model_validate(rows[0][0])
        messages = [(m, images) for _, m, images in rows if m is not None]
        more = len(messages) > limit
        messages = messages[:limit]
        messages.reverse()
        page = MessagesPage(
            items=[shown(m, images) for m, images in messages],
            earlier=messages[0][0].id if more else None,
        )
        return chat, page

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
        images: list[uuid.UUID] | None = None,
    ) -> MessagePublic:
        """Append a message and move the chat to the top of the list; a chat still called
        "New chat" takes its title from `title_from` (the first question). `images`
        (uploaded to this chat, not sent yet) go with it, or nothing is stored (400)."""
        async with self.database.session() as session:
            chat = await session.scalar(_owned(principal, chat_id).with_for_update())
            if chat is None:
                raise NotFound(f"no chat {chat_id}")
            message = Message(
                chat_id=chat_id,
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
            chat.updated_at = func.now()
            if title_from and chat.title == NEW_CHAT_TITLE:
                chat.title = title_from_text(title_from)
            await session.flush()  # the message's id and dates
            if images:
                await bind(session, chat_id, message.id, images)
            public = MessagePublic.model_validate(message)
            if images:
                await with_images(session, [public])
            await session.commit()
            return public

    async def truncate(
        self, principal: Principal, chat_id: uuid.UUID, *, from_id: int, keep: bool
    ) -> MessagePublic:
        """Drop the messages after `from_id` (and it too unless `keep`): regenerate and
        edit-and-continue start from there. Returns message `from_id`."""
        async with self.database.session() as session:
            chat = await session.scalar(_owned(principal, chat_id).with_for_update())
            message = await session.get(Message, from_id)
            if chat is None or message is None or message.chat_id != chat_id:
                raise NotFound(f"no message {from_id} in chat {chat_id}")
            first_dropped = from_id + 1 if keep else from_id
            await session.execute(
                delete(Message).where(Message.chat_id == chat_id, Message.id >= first_dropped)
            )
            await session.commit()
            return MessagePublic.model_validate(message)

    async def edit_message(
        self, principal: Principal, chat_id: uuid.UUID, message_id: int, content: str
    ) -> MessagePublic:
        """Change a user message and drop everything after it (the answer is asked again)."""
        await self.truncate(principal, chat_id, from_id=message_id, keep=True)
        async with self.database.session() as session:
            result = await session.execute(
                update(Message)
                .where(Message.id == message_id, Message.chat_id == chat_id, Message.role == "user")
                .values(content=content)
                .returning(Message)
            )
            message = result.scalar_one_or_none()
            if message is None:
                raise InvalidRequest("Only your own messages can be edited.")
            await session.commit()
            return MessagePublic.model_validate(message)

    async def export(self, principal: Principal, chat_id: uuid.UUID) -> ChatExport:
        chat = await self.get(principal, chat_id)
        async with self.database.session() as session:
            rows = await session.scalars(
                select(Message).where(Message.chat_id == chat_id).order_by(Message.id)
            )
            images = await exported(session, chat_id)
            messages = [
                ExportedMessage(
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
            created_at=chat.created_at,
            updated_at=chat.updated_at,
            messages=messages,
            system_prompt=chat.system_prompt,
            temperature=chat.temperature,
            max_tokens=chat.max_tokens,
        )


def export_markdown(data: ChatExport) -> str:
    lines = [f"# {data.title}", "", f"Model: {data.model}", ""]
    for message in data.messages:
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
