"""Request and response shapes of the chat API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_MESSAGE_CHARS = 100_000


class ChatCreate(BaseModel):
    model: str | None = Field(default=None, description="Default: the site's default model.")
    title: str = Field(default="", max_length=300)
    collection_ids: list[uuid.UUID] = Field(default_factory=list, max_length=20)


class ChatUpdate(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    model: str | None = None
    archived: bool | None = None
    collection_ids: list[uuid.UUID] | None = Field(default=None, max_length=20)


class ChatPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    model: str
    archived: bool
    collection_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime


class ChatsPage(BaseModel):
    items: list[ChatPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    role: Literal["user", "assistant"]
    content: str
    status: str
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    citations: list[dict[str, Any]] | None
    error: str | None
    created_at: datetime


class MessagesPage(BaseModel):
    items: list[MessagePublic] = Field(description="Oldest first.")
    earlier: int | None = Field(description="Pass as `before` to load the earlier messages.")


class MessageCreate(BaseModel):
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class ChatExport(BaseModel):
    """A chat as JSON: what export writes and import reads."""

    title: str = Field(max_length=300)
    model: str
    created_at: datetime | None = None
    messages: list[ExportedMessage] = Field(max_length=100_000)


class ExportedMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)
    status: str = "complete"
    citations: list[dict[str, Any]] | None = None


ChatExport.model_rebuild()
