"""Request and response shapes of the chat API."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from hearth.fields import Patch

MAX_MESSAGE_CHARS = 100_000
MAX_MESSAGES_PER_CHAT = 100_000
# An answer being generated has its text saved every SAVE_EVERY_SECONDS; one not saved for
# STALE_STREAM_SECONDS lost the replica that was generating it.
SAVE_EVERY_SECONDS = 2.0
STALE_STREAM_SECONDS = 15.0
MAX_TAG_CHARS = 40
MAX_TAGS_PER_CHAT = 20
# Images a user message may carry (each at most the setting `chat_image_max_bytes`).
MAX_IMAGES_PER_MESSAGE = 4
ImageType = Literal["image/png", "image/jpeg", "image/webp", "image/gif"]


def tag_name(value: str) -> str:
    """A tag's name: trimmed, inner spaces one; not empty, not too long."""
    name = " ".join(value.split())
    if not name:
        raise ValueError("a tag cannot be empty")
    if len(name) > MAX_TAG_CHARS:
        raise ValueError(f"a tag has at most {MAX_TAG_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise ValueError("a tag cannot hold control characters")
    return name


def _tag_names(names: list[str]) -> list[str]:
    """A chat's tags, each once: "Work" and "work" are one tag (the first spelling kept)."""
    unique: dict[str, str] = {}
    for name in names:
        unique.setdefault(tag_key(name), name)
    if len(unique) > MAX_TAGS_PER_CHAT:
        raise ValueError(f"a chat has at most {MAX_TAGS_PER_CHAT} tags ({len(unique)} given)")
    return list(unique.values())


def tag_key(name: str) -> str:
    """What tells tags apart: the name, spaces evened out and case-folded."""
    return " ".join(name.split()).casefold()


TagName = Annotated[str, AfterValidator(tag_name)]
# A chat's whole set of tags (a raw list of at most 200 names, at most 20 once deduplicated).
Tags = Annotated[list[TagName], Field(max_length=200), AfterValidator(_tag_names)]


class ChatSettings(BaseModel):
    """A chat's own settings; null (or left out) takes the site's default."""

    system_prompt: str | None = Field(
        default=None, max_length=20_000, description="Instead of the site's system prompt."
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(
        default=None, ge=1, le=32_768, description="Most tokens an answer may have."
    )


class ChatCreate(ChatSettings):
    model: str | None = Field(
        default=None,
        max_length=200,
        description="Default: the preset's model, else the site's default model.",
    )
    title: str = Field(default="", max_length=300)
    collection_ids: list[uuid.UUID] = Field(default_factory=list, max_length=20)
    preset_id: uuid.UUID | None = Field(
        default=None,
        description="Start from this preset: its model, settings and collections, copied "
        "into the chat. A field sent beside it (even null) wins over the preset's; its "
        "collections the caller may not read are left out, and said so in `notes`.",
    )


class ChatUpdate(Patch, ChatSettings):
    nullable = frozenset({"system_prompt", "temperature", "max_tokens"})  # null: the default

    title: str | None = Field(default=None, min_length=1, max_length=300)
    model: str | None = Field(default=None, max_length=200)
    archived: bool | None = None
    pinned: bool | None = None
    collection_ids: list[uuid.UUID] | None = Field(default=None, max_length=20)
    tags: Tags | None = Field(
        default=None,
        description=f"The chat's tags, all of them (an empty list removes them): at most "
        f"{MAX_TAGS_PER_CHAT}, each at most {MAX_TAG_CHARS} characters, told apart "
        "case-insensitively, spelt as you first spelt them.",
    )


class ChatPublic(ChatSettings):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    model: str
    archived: bool
    pinned: bool = False
    collection_ids: list[uuid.UUID]
    current_message_id: int | None = Field(
        default=None,
        description="The active leaf: the chat shows the path from its first message to "
        "it (`POST /api/chats/{id}/messages/{message_id}/select` changes it).",
    )
    tags: list[str] = Field(default_factory=list, description="In alphabetical order.")
    preset_id: uuid.UUID | None = Field(
        default=None, description="The preset it started from (null once that is deleted)."
    )
    created_at: datetime
    updated_at: datetime

    @field_validator("tags", mode="before")
    @classmethod
    def _no_tags(cls, value: Any) -> Any:
        return [] if value is None else value  # an array_agg over no rows


class TagCount(BaseModel):
    """One of the caller's tags, and how many of their chats carry it."""

    name: str
    chats: int


class ChatCreated(ChatPublic):
    notes: list[str] = Field(
        default_factory=list,
        description="What of its preset it did not take (collections the caller may not read).",
    )


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
    parent_id: int | None = Field(
        default=None, description="The message it follows; null for a first message."
    )
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
    # Its place among the messages that follow the same one (the versions of a question
    # or of an answer), on the messages of a chat's path; null where not read (the stream).
    sibling_index: int | None = Field(
        default=None, description="Its place among its siblings, from 1 (the 2 of 2/3)."
    )
    siblings: int | None = Field(
        default=None, description="How many messages follow its parent, itself included."
    )
    previous_sibling: int | None = Field(
        default=None, description="The sibling before it (select it to show that branch)."
    )
    next_sibling: int | None = Field(default=None, description="The sibling after it.")
    images: list[ImagePublic] = Field(default_factory=list, description="In their order.")

    @model_validator(mode="after")
    def _stale_is_interrupted(self) -> MessagePublic:
        # A streaming answer whose text has not been saved for a while lost its replica.
        if self.status == "streaming" and self.updated_at is not None:
            if datetime.now(UTC) - self.updated_at > timedelta(seconds=STALE_STREAM_SECONDS):
                self.status = "interrupted"
        return self


class MessagesPage(BaseModel):
    items: list[MessagePublic] = Field(
        description="Oldest first: the path from the chat's first message to its active "
        "leaf (the branch shown), not the messages of other branches."
    )
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
    left out on import takes its default: not archived, not pinned, no tags, dated now."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=300)
    model: str = Field(max_length=200)
    archived: bool = False
    pinned: bool = False
    tags: Tags = Field(default_factory=list)
    created_at: Moment | None = None
    updated_at: Moment | None = Field(
        default=None, description="Its last activity, which places it in the chat list."
    )
    messages: list[ExportedMessage] = Field(
        max_length=MAX_MESSAGES_PER_CHAT,
        description="Every message of every branch, each after the one it follows.",
    )
    current: int | None = Field(
        default=None,
        ge=1,
        description="The message the chat shows last (its active leaf), by its place in "
        "`messages` from 1; null or left out: the last one.",
    )

    @model_validator(mode="after")
    def _a_tree(self) -> ChatExport:
        for n, message in enumerate(self.messages, 1):
            if message.parent is not None and message.parent >= n:
                raise ValueError(
                    f"messages.{n - 1}.parent: {message.parent} is not an earlier message "
                    f"(a message follows one of the {n - 1} before it)"
                )
        if self.current is not None and self.current > len(self.messages):
            raise ValueError(f"current: there is no message {self.current}")
        return self

    def parents(self) -> list[int | None]:
        """Each message's parent, by its place in `messages` from 0 (None: a first one)."""
        found: list[int | None] = []
        for n, message in enumerate(self.messages):
            if "parent" not in message.model_fields_set:
                found.append(n - 1 if n else None)  # an export of one line
            else:
                found.append(None if message.parent is None else message.parent - 1)
        return found

    def current_index(self) -> int | None:
        """The active leaf, by its place in `messages` from 0 (None: no messages)."""
        if not self.messages:
            return None
        return len(self.messages) - 1 if self.current is None else self.current - 1

    def path(self) -> list[ExportedMessage]:
        """The messages shown: from the first down to the current one."""
        parents, at, path = self.parents(), self.current_index(), []
        while at is not None:
            path.append(self.messages[at])
            at = parents[at]
        path.reverse()
        return path


class ExportedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parent: int | None = Field(
        default=None,
        ge=1,
        description="The message this one follows, by its place in `messages` from 1 (an "
        "earlier one); null: a first message; left out: the message before it (exports "
        "from before branches are one line).",
    )
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
    messages: int = Field(description="Messages imported, of every branch.")
    left_out: int = Field(
        description="Messages not imported: 0, since every branch is kept (earlier "
        "versions kept only the branch shown last)."
    )
    not_imported: list[str] = Field(
        description="What else the chat held that Hearth does not keep (folder, files, ratings, "
        "tags beyond its limits...), one readable line each."
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
    messages: int = Field(
        description="The messages it shows: the chat's path (the branch shown) when it was made."
    )
    created_at: datetime


class SharedChat(BaseModel):
    """A shared chat as the link shows it: the path of messages (the branch) the chat
    showed when it was shared."""

    title: str
    model: str
    shared_at: datetime
    messages: list[MessagePublic] = Field(description="Oldest first.")
    earlier: int | None = Field(description="Pass as `before` to load the earlier messages.")
