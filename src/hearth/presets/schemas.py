"""Request and response shapes of the presets API. Bodies refuse fields they do not know
(`extra="forbid"`): a `top_p` or `tools` a preset cannot hold is a 400 naming it, never
dropped. The settings are a chat's own (`ChatSettings`), with the same bounds."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from hearth.chat.schemas import ChatSettings
from hearth.fields import Patch

MAX_COLLECTIONS = 20  # as a chat
MAX_GROUPS = 50


def _named(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a preset needs a name")
    return value


Name = Annotated[str, StringConstraints(max_length=200), AfterValidator(_named)]
GroupId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class PresetCreate(ChatSettings):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: str = Field(default="", max_length=2_000)
    model: str = Field(
        min_length=1, max_length=200, description="The base model: a chat model served here."
    )
    collection_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=MAX_COLLECTIONS,
        description="Collections its chats answer from; each readable by its creator.",
    )
    group_ids: list[GroupId] = Field(
        default_factory=list,
        max_length=MAX_GROUPS,
        description="Groups whose members may use it: groups the caller is in (any group, "
        "for an administrator).",
    )


class PresetUpdate(Patch, ChatSettings):
    model_config = ConfigDict(extra="forbid")
    nullable = frozenset({"system_prompt", "temperature", "max_tokens"})  # null: the site's

    name: Name | None = None
    description: str | None = Field(default=None, max_length=2_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    collection_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_COLLECTIONS)
    group_ids: list[GroupId] | None = Field(
        default=None, max_length=MAX_GROUPS, description="Replaces the groups it is shared with."
    )


class PresetPublic(ChatSettings):
    id: uuid.UUID
    name: str
    description: str
    model: str
    collection_ids: list[uuid.UUID]
    group_ids: list[str] = Field(
        description="The groups it is shared with (to someone who may not change it, only "
        "those of their groups it is shared through)."
    )
    owned: bool = Field(description="Whether the caller owns it.")
    editable: bool = Field(description="Whether the caller may change and delete it.")
    created_at: datetime
    updated_at: datetime
