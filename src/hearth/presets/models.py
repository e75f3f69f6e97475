"""Tables the presets feature owns: presets, and the groups each is shared with."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, DateTime, Float, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hearth.db.base import Base


class ChatPreset(Base):
    """A base model with a system prompt, parameters and collections, that a chat starts
    from (its values are copied into the chat). Null settings take the site's, as a chat's."""

    __tablename__ = "chat_preset"
    __table_args__ = (Index("ix_chat_preset_owner_id", "owner_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    temperature: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    collection_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID), default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PresetShare(Base):
    """A group whose members may see and use a preset (only its owner and administrators
    change it). Group ids are the accounts feature's, stored opaque as collection grants
    store them."""

    __tablename__ = "chat_preset_share"

    preset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_preset.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)
