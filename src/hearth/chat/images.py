"""Images attached to chat messages: checked, stored, read back by whoever may read the
chat (its owner, a live link's readers), and given to the model as OpenAI content parts.

An image is uploaded to its chat first (`upload`: no message yet) and bound to the message
that names it when the message is stored, in the message's transaction (`bind`); one never
sent is deleted a day later. Its type is told by its bytes, never by what the browser
declared: PNG, JPEG, WebP or GIF, nothing else (an SVG could carry a script). Every query
filters by the chat's owner, or by a live link, inside its SQL.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import JSON, and_, delete, func, insert, literal, select, text, type_coerce, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.accounts.principal import Principal
from hearth.chat import tree
from hearth.chat.models import Chat, ChatImage, Message
from hearth.chat.schemas import (
    MAX_IMAGES_PER_MESSAGE,
    ExportedImage,
    ImagePublic,
    MessagePublic,
)
from hearth.db.session import Database
from hearth.engines.protocol import ChatMessage
from hearth.errors import InvalidRequest, NotFound

# Images waiting in a chat for their message: a few messages' worth, then a 400.
MAX_WAITING_IMAGES = 4 * MAX_IMAGES_PER_MESSAGE
WAITING_DAYS = 1
# What an image costs in the model's window, for fitting the history (engines count
# 256-1,500 tokens for a picture, by its size and the model).
IMAGE_TOKENS = 1024
ACCEPTED = "PNG, JPEG, WebP or GIF"


def image_type(data: bytes) -> str | None:
    """The image's type told by its first bytes (its signature), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def checked(data: bytes, max_bytes: int, what: str = "the image") -> str:
    """The image's type; InvalidRequest naming what is wrong (its type, its size)."""
    if len(data) > max_bytes:
        raise InvalidRequest(
            f"{what} is {_size(len(data))}; an image may be at most {_size(max_bytes)} "
            "(the setting chat_image_max_bytes)"
        )
    kind = image_type(data)
    if kind is None:
        raise InvalidRequest(f"{what} is not a {ACCEPTED} image (told by its bytes)")
    return kind


def data_url(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def decoded(text: str, what: str) -> bytes:
    """Base64 (or a `data:` URL's base64) as bytes; InvalidRequest naming `what`."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{what} is not valid base64") from None


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB" if count >= 1024 * 1024 else f"{count:,} bytes"


class ChatImages:
    def __init__(self, database: Database, *, max_bytes: int) -> None:
        self.database = database
        self.max_bytes = max_bytes

    async def upload(self, principal: Principal, chat_id: uuid.UUID, data: bytes) -> ImagePublic:
        """Store an image for a message of the caller's chat not sent yet; 400 for a type
        other than PNG, JPEG, WebP or GIF, or larger than `max_bytes`."""
        kind = checked(data, self.max_bytes)
        async with self.database.session() as session:
            owned = await session.scalar(
                select(Chat.id)
                .where(Chat.id == chat_id, Chat.owner_id == principal.user_id)
                .with_for_update()
            )
            if owned is None:
                raise NotFound(f"no chat {chat_id}")
            waiting = ChatImage.chat_id == chat_id, ChatImage.message_id.is_(None)
            # Images uploaded and never sent (a tab closed) go after a day.
            await session.execute(
                delete(ChatImage).where(
                    *waiting, ChatImage.created_at < func.now() - timedelta(days=WAITING_DAYS)
                )
            )
            count = await session.scalar(
                select(func.count()).select_from(ChatImage).where(*waiting)
            )
            if (count or 0) >= MAX_WAITING_IMAGES:
                raise InvalidRequest(
                    f"This chat has {count} images waiting for their message; send it, or "
                    "remove some, before adding more."
                )
            image = ChatImage(
                id=uuid.uuid4(), chat_id=chat_id, content_type=kind, size=len(data), data=data
            )
            session.add(image)
            await session.commit()
            return ImagePublic.model_validate(image)

    async def discard(self, principal: Principal, chat_id: uuid.UUID, image_id: uuid.UUID) -> None:
        """Remove an image not sent yet (the composer's remove button)."""
        async with self.database.session() as session:
            result = await session.execute(
                delete(ChatImage).where(
                    ChatImage.id == image_id,
                    ChatImage.chat_id == chat_id,
                    ChatImage.message_id.is_(None),
                    ChatImage.chat_id.in_(
                        select(Chat.id).where(Chat.owner_id == principal.user_id)
                    ),
                )
            )
            await session.commit()
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"no image {image_id} waiting in chat {chat_id}")

    async def read(
        self, principal: Principal, chat_id: uuid.UUID, image_id: uuid.UUID
    ) -> tuple[str, bytes]:
        """An image of the caller's chat: its type and bytes; NotFound for anyone else."""
        statement = (
            select(ChatImage.content_type, ChatImage.data)
            .join(Chat, Chat.id == ChatImage.chat_id)
            .where(
                ChatImage.id == image_id,
                ChatImage.chat_id == chat_id,
                Chat.owner_id == principal.user_id,
            )
        )
        return await self._one(statement, image_id)

    async def read_shared(self, token: str, image_id: uuid.UUID) -> tuple[str, bytes]:
        """An image a live link shows (one of a message on the path up from the leaf it was
        made with, in one statement with the link's check); NotFound otherwise (another
        branch's, or a message written later)."""
        path = tree.shared_path(token)
        statement = (
            select(ChatImage.content_type, ChatImage.data)
            .join(
                path, and_(path.c.id == ChatImage.message_id, path.c.chat_id == ChatImage.chat_id)
            )
            .where(ChatImage.id == image_id)
        )
        return await self._one(statement, image_id)

    async def _one(self, statement: Any, image_id: uuid.UUID) -> tuple[str, bytes]:
        async with self.database.read() as session:
            row = (await session.execute(statement)).first()
        if row is None:
            raise NotFound(f"no image {image_id}")
        return row[0], row[1]

    async def contents(
        self, chat_id: uuid.UUID, image_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        """The images as `data:` URLs, for the model (the chat's owner checked before)."""
        ids = list(image_ids)
        if not ids:
            return {}
        async with self.database.read() as session:
            rows = await session.execute(
                select(ChatImage.id, ChatImage.content_type, ChatImage.data).where(
                    ChatImage.chat_id == chat_id, ChatImage.id.in_(ids)
                )
            )
            return {row.id: data_url(row.content_type, row.data) for row in rows}


def with_parts(
    message: ChatMessage, ids: list[uuid.UUID], urls: dict[uuid.UUID, str]
) -> ChatMessage:
    """`message` with its images (`ids`) as OpenAI content parts: the text, then each image
    as a `data:` URL (an engine reads no link to Hearth)."""
    if not ids:
        return message
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    parts += [{"type": "image_url", "image_url": {"url": urls[i]}} for i in ids if i in urls]
    return ChatMessage(role=message.role, content=parts)


async def bind(
    session: AsyncSession, chat_id: uuid.UUID, message_id: int, image_ids: list[uuid.UUID]
) -> None:
    """Give images waiting in the chat to its new message, in order, within the message's
    transaction; an id that is not an image waiting in this chat is a 400 (and the message
    is not stored)."""
    if len(set(image_ids)) != len(image_ids):
        raise InvalidRequest("The message names an image twice.", param="images")
    for position, image_id in enumerate(image_ids):
        result = await session.execute(
            update(ChatImage)
            .where(
                ChatImage.id == image_id,
                ChatImage.chat_id == chat_id,
                ChatImage.message_id.is_(None),
            )
            .values(message_id=message_id, position=position)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise InvalidRequest(
                f"images[{position}]: {image_id} is not an image uploaded to this chat for "
                "a message not sent yet",
                param=f"images[{position}]",
            )


async def copy_images(
    session: AsyncSession, chat_id: uuid.UUID, from_message: int, to_message: int
) -> None:
    """Give message `to_message` copies of message `from_message`'s images, in order (an
    edited question's new version keeps its images; the old version keeps its own), in
    one statement: the bytes stay in the database."""
    columns = ("id", "chat_id", "message_id", "position", "content_type", "size", "data")
    copied = select(
        func.gen_random_uuid(),
        ChatImage.chat_id,
        literal(to_message),
        ChatImage.position,
        ChatImage.content_type,
        ChatImage.size,
        ChatImage.data,
    ).where(ChatImage.chat_id == chat_id, ChatImage.message_id == from_message)
    await session.execute(insert(ChatImage).from_select(columns, copied))


def listed_images(message_id: Any) -> Any:
    """A column for a query of messages: the images of the message `message_id` names, in
    order, as [{id, content_type, size}] (a correlated subquery: the page stays one
    statement)."""
    entry = func.json_build_object(
        "id", ChatImage.id, "content_type", ChatImage.content_type, "size", ChatImage.size
    )
    listed = func.coalesce(
        func.json_agg(aggregate_order_by(entry, ChatImage.position)), text("'[]'::json")
    )
    return type_coerce(
        select(listed).where(ChatImage.message_id == message_id).scalar_subquery(), JSON
    ).label("images")


def shown(message: Message | MessagePublic, images: list[dict[str, Any]] | None) -> MessagePublic:
    """A message as the API shows it, with the images `listed_images` read."""
    public = (
        message if isinstance(message, MessagePublic) else MessagePublic.model_validate(message)
    )
    public.images = [ImagePublic.model_validate(image) for image in images or []]
    return public


async def with_images(session: AsyncSession, messages: list[MessagePublic]) -> list[MessagePublic]:
    """`messages` with their images' ids and types (read by the caller's query, which
    checked who may read them)."""
    ids = [m.id for m in messages if m.role == "user"]
    if not ids:
        return messages
    rows = await session.execute(
        select(ChatImage.message_id, ChatImage.id, ChatImage.content_type, ChatImage.size)
        .where(ChatImage.message_id.in_(ids))
        .order_by(ChatImage.message_id, ChatImage.position)
    )
    found: dict[int, list[ImagePublic]] = {}
    for row in rows:
        found.setdefault(row.message_id, []).append(
            ImagePublic(id=row.id, content_type=row.content_type, size=row.size)
        )
    for message in messages:
        message.images = found.get(message.id, [])
    return messages


async def exported(session: AsyncSession, chat_id: uuid.UUID) -> dict[int, list[ExportedImage]]:
    """A chat's images for its export, by message, in order, their bytes in base64."""
    rows = await session.execute(
        select(ChatImage.message_id, ChatImage.content_type, ChatImage.data)
        .where(ChatImage.chat_id == chat_id, ChatImage.message_id.is_not(None))
        .order_by(ChatImage.message_id, ChatImage.position)
    )
    found: dict[int, list[ExportedImage]] = {}
    for row in rows:
        found.setdefault(row.message_id, []).append(
            ExportedImage(content_type=row.content_type, data=base64.b64encode(row.data).decode())
        )
    return found


def imported(images: list[ExportedImage], max_bytes: int, where: str) -> list[ChatImage]:
    """Rows for an imported message's images, each checked as an upload is (its type told
    by its bytes, not by the file); InvalidRequest naming the first that is not fit."""
    rows = []
    for position, image in enumerate(images):
        what = f"{where}.images[{position}]"
        data = decoded(image.data, what)
        kind = checked(data, max_bytes, what)
        rows.append(
            ChatImage(
                id=uuid.uuid4(), position=position, content_type=kind, size=len(data), data=data
            )
        )
    return rows
