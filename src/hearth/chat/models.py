"""Tables the chat feature owns: conversations, their messages, their tags, the images
attached to them, and links that share them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.orm import Mapped, mapped_column, query_expression

from hearth.db.base import Base

# Chats are searched in whatever language people write: no stemming, no stop words.
SEARCH_CONFIG = "simple"


class Chat(Base):
    __tablename__ = "chat"
    __table_args__ = (
        # The chat list: one user's chats, pinned first, then newest first, archived apart.
        Index("ix_chat_owner_list", "owner_id", "archived", "pinned", "updated_at", "id"),
        # The chats a deleted preset had started, to forget it.
        Index("ix_chat_preset_id", "preset_id", postgresql_where=text("preset_id IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    model: Mapped[str] = mapped_column(String(200))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    collection_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID), default=list)
    # The chat's own settings; null takes the site's (admin settings) or the engine's.
    system_prompt: Mapped[str | None] = mapped_column(Text)
    temperature: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    # The active leaf: the conversation shown and answered is the path from the first
    # message down to it (`chat/tree.py`). No foreign key (the two tables would reference
    # each other): the service sets it only to a message of this chat, checked in the same
    # SQL, and every walk from it joins on the chat's id. Null: no message yet.
    current_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # The preset it started from (presets feature; no foreign key across features): null
    # once that preset is deleted, the values it copied kept.
    preset_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Its tags' names, read only by the queries that ask for them (`chat.tags.with_tags`);
    # None elsewhere, never loaded behind the caller's back.
    tags: Mapped[list[str] | None] = query_expression()


class ChatTag(Base):
    """A tag on a chat: its owner's label, several a chat, to find chats by. `key` tells
    tags apart (the name case-folded: "Work" and "work" are one tag); `name` is the
    spelling shown. Deleting the chat deletes its tags (CASCADE)."""

    __tablename__ = "chat_tag"

    chat_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class Message(Base):
    """One turn. The user's message is stored before generation starts; the answer from its
    start as `streaming`, its text saved every few seconds and at the end with its status:
    complete, stopped (the user pressed stop), failed, or interrupted (its replica died:
    `updated_at` went stale while streaming).

    Messages form a tree: each follows its `parent_id` (null for a first message), so
    regenerating an answer or editing a question adds a sibling and nothing is deleted.
    A parent is always older (a smaller id) and always of the same chat: the foreign key
    is on (chat_id, parent_id), so the database itself refuses a link across chats."""

    __tablename__ = "chat_message"
    __table_args__ = (
        # Unique (the id alone is) so that the parent's foreign key can name the pair.
        Index("ix_chat_message_chat_id", "chat_id", "id", unique=True),
        # A message's children (siblings, the newest leaf below a message).
        Index("ix_chat_message_parent", "chat_id", "parent_id"),
        Index("ix_chat_message_tsv", "tsv", postgresql_using="gin"),
        ForeignKeyConstraint(
            ["chat_id", "parent_id"],
            ["chat_message.chat_id", "chat_message.id"],
            name="fk_chat_message_parent",
            ondelete="CASCADE",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(BigInteger)
    role: Mapped[str] = mapped_column(String(10))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    model: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    citations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(f"to_tsvector('{SEARCH_CONFIG}', content)", persisted=True)
    )


class ChatShare(Base):
    """A read-only link to a chat for the site's signed-in users, until revoked. A snapshot:
    it shows the path from the first message down to `last_message_id`, the chat's active
    leaf when the link was made (not copies: messages are never changed or deleted but
    with their chat, and regenerating or editing adds branches, so the path stays as it
    was). Deleting the chat deletes its links (CASCADE)."""

    __tablename__ = "chat_share"
    __table_args__ = (
        Index("ix_chat_share_chat_id", "chat_id"),
        # One live link per chat: sharing again hands out the same one.
        Index(
            "uq_chat_share_active",
            "chat_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat.id", ondelete="CASCADE"))
    created_by: Mapped[str] = mapped_column(String(200))
    last_message_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ChatImage(Base):
    """An image attached to a user message (PNG, JPEG, WebP or GIF, told by its bytes), kept
    in the database with it: deleted with its message or chat (CASCADE), in the same
    transactions, and backed up with the rest. Uploaded before its message is sent, it has
    no `message_id` until then (one left so is deleted later: chat/images.py)."""

    __tablename__ = "chat_image"
    __table_args__ = (
        Index("ix_chat_image_chat_id", "chat_id"),
        Index("ix_chat_image_message_id", "message_id", "position"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("chat_message.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(SmallInteger, default=0)
    content_type: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
