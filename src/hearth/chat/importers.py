"""Chats made from exports, told apart by their shape: Hearth's own (one chat, an object
with `messages`, as `GET /api/chats/{id}/export` writes it) and Open WebUI's "Export chats"
file (an array of chats, each with a `chat` object; see `chat/openwebui.py`).

Each chat is written in its own transaction: a chat that cannot be imported leaves
nothing behind, and the file's other chats are imported all the same, each with its own
result (its new id, or why not).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DataError, IntegrityError

from hearth.accounts.principal import Principal
from hearth.chat import tags as chat_tags
from hearth.chat.images import imported
from hearth.chat.models import Chat, Message
from hearth.chat.openwebui import ImportModels, NotImportable, from_open_webui, title_of
from hearth.chat.schemas import ChatExport, ChatPublic, ChatsImported, ImportedChat
from hearth.chat.service import NEW_CHAT_TITLE
from hearth.db.session import Database
from hearth.errors import InvalidRequest

# A file of more chats is refused whole (400), before any is written: split it. The size
# of the body is limited before it is read (`chat_import_max_bytes`, 413).
MAX_IMPORT_CHATS = 2000


def import_format(data: Any) -> Literal["hearth", "open-webui"]:
    """Which export `data` is, by its shape; InvalidRequest when it is neither."""
    if isinstance(data, dict):
        return "open-webui" if isinstance(data.get("chat"), dict) else "hearth"
    if isinstance(data, list):
        if not data:
            raise InvalidRequest("The file holds no chats.")
        if any(isinstance(c, dict) and isinstance(c.get("chat"), dict) for c in data):
            return "open-webui"
        if any(isinstance(c, dict) and "mapping" in c for c in data):
            raise InvalidRequest("This looks like ChatGPT's export, which Hearth cannot read yet.")
    raise InvalidRequest(
        "This is neither a Hearth chat export (an object with 'messages') nor Open WebUI's "
        "export of chats (an array of chats, each with a 'chat' object)."
    )


def hearth_export(data: Any) -> ChatExport:
    """Hearth's own export, checked field by field (400 naming the first bad field)."""
    try:
        return ChatExport.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = f"{where}: {first['msg']}" if where else first["msg"]
        raise InvalidRequest(message, param=where or None) from None


class ChatImports:
    def __init__(self, database: Database, *, max_image_bytes: int = 10 * 1024 * 1024) -> None:
        self.database = database
        self.max_image_bytes = max_image_bytes

    async def hearth(self, principal: Principal, data: ChatExport) -> ChatPublic:
        """A new chat from Hearth's own export, in one transaction (all of it or nothing)."""
        return await self._write(principal, data)

    async def open_webui(
        self, principal: Principal, data: list[Any] | dict[str, Any], *, models: ImportModels
    ) -> ChatsImported:
        """Every chat of Open WebUI's export (or the one chat it exports alone), each in its
        own transaction; a chat that fails is reported and the next one imported."""
        chats = data if isinstance(data, list) else [data]
        if len(chats) > MAX_IMPORT_CHATS:
            raise InvalidRequest(
                f"The file holds {len(chats):,} chats; import at most {MAX_IMPORT_CHATS:,} "
                "at a time."
            )
        results = []
        for index, raw in enumerate(chats, 1):
            title = title_of(raw)
            try:
                converted = from_open_webui(raw, models, max_image_bytes=self.max_image_bytes)
                chat = await self._write(principal, converted.export)
            except NotImportable as exc:
                results.append(_failed(index, title, str(exc)))
            except InvalidRequest as exc:  # an image that is not fit (type, size)
                results.append(_failed(index, title, exc.message))
            except (DataError, IntegrityError) as exc:
                # A value PostgreSQL refuses that the checks above let through: this chat
                # is not imported (its transaction rolled back); the next one may be.
                reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
                results.append(_failed(index, title, f"it could not be stored ({reason})"))
            else:
                results.append(
                    ImportedChat(
                        index=index,
                        title=chat.title,
                        id=chat.id,
                        error=None,
                        messages=len(converted.export.messages),
                        left_out=0,  # every branch is kept
                        not_imported=converted.not_imported,
                        notes=converted.notes,
                    )
                )
        imported = sum(r.id is not None for r in results)
        return ChatsImported(
            format="open-webui", imported=imported, failed=len(results) - imported, chats=results
        )

    async def _write(self, principal: Principal, data: ChatExport) -> ChatPublic:
        # Dates the export leaves out are the database's now().
        stamps = {
            name: value
            for name, value in (("created_at", data.created_at), ("updated_at", data.updated_at))
            if value is not None
        }
        # Every image checked as an upload is, before anything is written.
        images = [
            imported(m.images, self.max_image_bytes, f"messages[{n}]")
            for n, m in enumerate(data.messages)
        ]
        async with self.database.session() as session:
            # The messages' ids first, in order (a parent's before its children's, as the
            # export lists them), so that one INSERT writes the tree with its links.
            ids: list[int] = []
            if data.messages:
                ids = sorted(
                    await session.scalars(
                        select(
                            func.nextval(func.pg_get_serial_sequence("chat_message", "id"))
                        ).select_from(func.generate_series(1, len(data.messages)))
                    )
                )
            current = data.current_index()
            chat = self._chat(principal, data, stamps)
            chat.current_message_id = ids[current] if current is not None else None
            session.add(chat)
            await session.flush()
            if data.messages:
                now = datetime.now(UTC)
                parents = data.parents()
                await session.execute(
                    insert(Message),
                    [
                        {
                            "id": ids[n],
                            "chat_id": chat.id,
                            "parent_id": None if parents[n] is None else ids[parents[n]],
                            "role": m.role,
                            "content": m.content,
                            "status": m.status,
                            "model": m.model,
                            "error": m.error,
                            "citations": m.citations,
                            "created_at": m.created_at or now,
                            "updated_at": m.created_at or now,
                        }
                        for n, m in enumerate(data.messages)
                    ],
                )
                for n, rows in enumerate(images):  # each message's, by its reserved id
                    for row in rows:
                        row.chat_id, row.message_id = chat.id, ids[n]
                        session.add(row)
            tags = (
                await chat_tags.replace(session, principal, chat.id, data.tags) if data.tags else []
            )
            await session.commit()
            public = ChatPublic.model_validate(chat)
        public.tags = tags
        return public

    @staticmethod
    def _chat(principal: Principal, data: ChatExport, stamps: dict[str, datetime]) -> Chat:
        return Chat(
            id=uuid.uuid4(),
            owner_id=principal.user_id,
            title=data.title.strip() or NEW_CHAT_TITLE,
            model=data.model,
            archived=data.archived,
            pinned=data.pinned,
            collection_ids=[],
            system_prompt=data.system_prompt,
            temperature=data.temperature,
            max_tokens=data.max_tokens,
            **stamps,
        )


def _failed(index: int, title: str, reason: str) -> ImportedChat:
    return ImportedChat(
        index=index,
        title=title,
        id=None,
        error=f"chat {index} '{title}': {reason}",
        messages=0,
        left_out=0,
        not_imported=[],
        notes=[],
    )
