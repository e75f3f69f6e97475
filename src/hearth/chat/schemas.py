"""Request and response shapes of the chat API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hearth.fields import Patch

MAX_MESSAGE_CHARS = 100_000
# An answer being generated has its text saved every SAVE_EVERY_SECONDS; one not saved for
# STALE_STREAM_SECONDS lost the replica that was generating it.
SAVE_EVERY_SECONDS = 2.0
STALE_STREAM_SECONDS = 15.0


class ChatCreate(BaseModel):
    model: str | None = Field(
        default=None, max_length=200, description="Default: the site's default model."
    )
    title: str = Field(default="", max_length=300)
    collection_ids: list[uuid.UUID] = Field(default_factory=list, max_length=20)


class ChatSettings(BaseModel):
    """A chat's own settings; null (or left out) takes the site's default."""

    system_prompt: str | None = Field(
        default=None, max_length=20_000, description="Instead of the site's system prompt."
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(
        default=None, ge=1, le=32_768, description="Most tokens an answer may have."
    )


class ChatUpdate(Patch, ChatSettings):
    nullable = frozenset({"system_prompt", "temperature", "max_tokens"})  # null: the default

    title: str | None = Field(default=None, min_length=1, max_length=300)
    model: str | None = Field(default=None, max_length=200)
    archived: bool | None = None
    pinned: bool | None = None
    collection_ids: list[uuid.UUID] | None = Field(default=None, max_length=20)


class ChatPublic(ChatSettings):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    model: str
    archived: bool
    pinned: bool = False
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
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _stale_is_interrupted(self) -> MessagePublic:
        # A streaming answer whose text has not been saved for a while lost its replica.
        if self.status == "streaming" and self.updated_at is not None:
            if datetime.now(UTC) - self.updated_at > timedelta(seconds=STALE_STREAM_SECONDS):
                self.status = "interrupted"
        return self


class MessagesPage(BaseModel):
    items: list[MessagePublic] = Field(description="Oldest first.")
    earlier: int | None = Field(description="Pass as `before` to load the earlier messages.")


class MessageCreate(BaseModel):
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class ChatExport(ChatSettings):
    """A chat as JSON: what export writes and import reads (its settings with it)."""

    title: str = Field(max_length=300)
    model: str = Field(max_length=200)
    created_at: datetime | None = None
    messages: list[ExportedMessage] = Field(max_length=100_000)


class ExportedMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)
    status: Literal["complete", "stopped", "failed", "interrupted"] = "complete"
    citations: list[dict[str, Any]] | None = None


ChatExport.model_rebuild()
