"""Request and response shapes of the chat API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hearth.fields import Patch

MAX_MESSAGE_CHARS = 100_000
MAX_MESSAGES_PER_CHAT = 100_000
# An answer being generated has its text saved every SAVE_EVERY_SECONDS; one not saved for
# STALE_STREAM_SECONDS lost the replica that was generating it.
SAVE_EVERY_SECONDS = 2.0
STALE_STREAM_SECONDS = 15.0
# Images a user message may carry (each at most the setting `chat_image_max_bytes`).
MAX_IMAGES_PER_MESSAGE = 4
ImageType = Literal["image/png", "image/jpeg", "image/webp", "image/gif"]


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


class ImagePublic(BaseModel):
    """An image attached to a message: its bytes at `GET /api/chats/{chat}/images/{id}`
    (the chat's owner), or `GET /api/shared/{token}/images/{id}` (a link's readers)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    content_type: ImageType
    size: int = Field(description="Bytes.")


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
    images: list[ImagePublic] = Field(default_factory=list, description="In their order.")

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
    images: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=MAX_IMAGES_PER_MESSAGE,
        description="Images uploaded to this chat (`POST /api/chats/{id}/images`) for this "
        "message, in order; only for a model that reads images (400 otherwise).",
    )


class ChatModelPublic(BaseModel):
    """A chat model served here, as the chat page offers it."""

    name: str
    context_window: int = Field(description="Tokens (the engine's, else Hearth's default).")
    vision: bool = Field(
        description="It reads images: its `vision` setting, else what its engine reports."
    )
    default: bool = Field(description="The model a new chat takes.")


def _utc(value: datetime) -> datetime:
    """A moment in UTC (one without a zone is taken as UTC); refused when UTC cannot write
    it (before the year 1 or after 9999 once converted)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("a date between the years 1 and 9999 in UTC") from None


Moment = Annotated[datetime, AfterValidator(_utc)]


class ChatExport(ChatSettings):
    """A chat as JSON: what export writes and import reads (its settings with it). What is
    left out on import takes its default: not archived, not pinned, dated now."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=300)
    model: str = Field(max_length=200)
    archived: bool = False
    pinned: bool = False
    created_at: Moment | None = None
    updated_at: Moment | None = Field(
        default=None, description="Its last activity, which places it in the chat list."
    )
    messages: list[ExportedMessage] = Field(max_length=MAX_MESSAGES_PER_CHAT)


class ExportedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)
    status: Literal["complete", "stopped", "failed", "interrupted"] = "complete"
    model: str | None = Field(default=None, max_length=200, description="The answer's model.")
    error: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    citations: list[dict[str, Any]] | None = None
    created_at: Moment | None = None
    images: list[ExportedImage] = Field(
        default_factory=list, max_length=MAX_IMAGES_PER_MESSAGE, description="A user's images."
    )

    @model_validator(mode="after")
    def _images_are_the_users(self) -> ExportedMessage:
        if self.images and self.role != "user":
            raise ValueError("only a user's message carries images")
        return self


class ExportedImage(BaseModel):
    """An image in an export, its bytes in base64 (checked again on import: its type told
    by the bytes, its size within `chat_image_max_bytes`)."""

    model_config = ConfigDict(extra="forbid")

    content_type: ImageType
    data: str = Field(description="The image's bytes, base64.")


ChatExport.model_rebuild()
ExportedMessage.model_rebuild()


class ImportedChat(BaseModel):
    """What became of one chat of an imported file."""

    index: int = Field(description="The chat's place in the file, from 1.")
    title: str
    id: uuid.UUID | None = Field(description="The new chat; null when it was not imported.")
    error: str | None = Field(description="Why it was not imported (nothing of it was kept).")
    messages: int = Field(description="Messages imported.")
    left_out: int = Field(
        description="Messages of the chat's other branches (Hearth keeps one line of "
        "messages: the branch that was shown last), not imported."
    )
    not_imported: list[str] = Field(
        description="What else the chat held that Hearth does not keep (tags, folder, files, "
        "ratings...), one readable line each."
    )
    notes: list[str] = Field(
        description="What was changed to fit Hearth (a model not served here replaced by "
        "the site's, a title shortened, a missing current message)."
    )


class ChatsImported(BaseModel):
    """An import of many chats (Open WebUI's "Export chats" file): one result per chat."""

    format: Literal["open-webui"]
    imported: int
    failed: int
    chats: list[ImportedChat]


class ChatSharePublic(BaseModel):
    """A chat's read-only link: for anyone signed in to this site, until it is revoked."""

    token: str
    path: str = Field(description="The page that shows it, `/s/{token}`.")
    url: str = Field(description="The same page, absolute (as this request reached the site).")
    messages: int = Field(description="The messages it shows: the chat's, when it was made.")
    created_at: datetime


class SharedChat(BaseModel):
    """A shared chat as the link shows it: the messages up to the moment it was shared."""

    title: str
    model: str
    shared_at: datetime
    messages: list[MessagePublic] = Field(description="Oldest first.")
    earlier: int | None = Field(description="Pass as `before` to load the earlier messages.")
