"""Settings stored in the database (every replica reads the same), and the server secret.

`SiteSettings` holds what an administrator changes while Hearth runs; what is fixed at
start (addresses, engines, database) stays in `hearth.config.Settings`. Reads are cached for
two seconds per process, so a change reaches every replica within that time.
"""

from __future__ import annotations

import secrets
import time
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from hearth.admin.models import AppSetting
from hearth.db.session import Database
from hearth.fields import Patch

_CACHE_SECONDS = 2.0
_SECRET_KEY = "secret:session"


class SiteSettings(BaseModel):
    signup_mode: Literal["open", "invite", "closed"] = Field(
        default="open",
        description="open: anyone may sign up; invite: only emails an admin invited "
        "(created as pending accounts); closed: only admins create accounts.",
    )
    approve_new_users: bool = Field(
        default=True, description="New sign-ups wait for an admin's approval."
    )
    default_model: str | None = Field(default=None, description="Model new chats start with.")
    system_prompt: str = Field(default="", max_length=20_000)
    rag_top_k: int = Field(default=5, ge=1, le=50, description="Passages per answer.")
    answer_max_tokens: int = Field(
        default=1024,
        ge=16,
        le=32_768,
        description="Most tokens a chat answer may have unless the chat sets its own: a "
        "small model that loops stops here (and at its context window, if that is less).",
    )


class SiteSettingsUpdate(Patch):
    nullable = frozenset({"default_model"})  # null: no default model

    signup_mode: Literal["open", "invite", "closed"] | None = None
    approve_new_users: bool | None = None
    default_model: str | None = Field(default=None, max_length=200)
    system_prompt: str | None = Field(default=None, max_length=20_000)
    rag_top_k: int | None = Field(default=None, ge=1, le=50)
    answer_max_tokens: int | None = Field(default=None, ge=16, le=32_768)


class SiteSettingsStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._cached: tuple[float, SiteSettings] | None = None

    async def get(self) -> SiteSettings:
        now = time.monotonic()
        if self._cached is None or self._cached[0] < now:
            names = list(SiteSettings.model_fields)
            async with self.database.read() as session:
                rows = await session.execute(
                    select(AppSetting.key, AppSetting.value).where(AppSetting.key.in_(names))
                )
            self._cached = (
                now + _CACHE_SECONDS,
                SiteSettings(**{key: value for key, value in rows}),
            )
        return self._cached[1]

    async def update(self, patch: SiteSettingsUpdate) -> SiteSettings:
        """Change the given settings (validated together first), all in one transaction."""
        values = patch.model_dump(exclude_unset=True)
        merged = SiteSettings(**((await self.get()).model_dump() | values))
        if values:
            async with self.database.session() as session:
                for key in values:
                    statement = insert(AppSetting).values(key=key, value=getattr(merged, key))
                    await session.execute(
                        statement.on_conflict_do_update(
                            index_elements=[AppSetting.key],
                            set_={"value": statement.excluded.value},
                        )
                    )
                await session.commit()
        self._cached = None
        return merged

    async def secret(self) -> bytes:
        """The key that signs session cookies and CSRF tokens: made once, on first use, and
        shared by every replica through the database (the first replica's insert wins)."""
        candidate = secrets.token_hex(32)
        async with self.database.session() as session:
            await session.execute(
                insert(AppSetting)
                .values(key=_SECRET_KEY, value=candidate)
                .on_conflict_do_nothing(index_elements=[AppSetting.key])
            )
            value = await session.scalar(
                select(AppSetting.value).where(AppSetting.key == _SECRET_KEY)
            )
            await session.commit()
        return bytes.fromhex(value)
