"""Tables the accounts feature owns: users, groups and their members, browser sessions,
API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hearth.db.base import Base


class User(Base):
    """A person who signs in. Ids are UUIDs as text: every feature stores them as opaque
    `owner_id` strings, as they do for grants to `group:<id>`."""

    __tablename__ = "app_user"
    __table_args__ = (Index("uq_app_user_email", text("lower(email)"), unique=True),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    # Argon2id; None for accounts that only sign in through the identity provider.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10), default="user")  # admin | user
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending|active|disabled
    oidc_subject: Mapped[str | None] = mapped_column(String(300), unique=True)
    # An unclaimed invitation's token, hashed (hearth.accounts.invitations), and its expiry.
    invite_hash: Mapped[str | None] = mapped_column(String(64))
    invite_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def invited(self) -> bool:
        """Not claimed yet: no password, no identity-provider link."""
        return self.password_hash is None and self.oidc_subject is None


class Group(Base):
    """A group of users, and a team for the gateway: API keys made for it share its limits
    (on top of each key's own)."""

    __tablename__ = "user_group"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    budget: Mapped[float | None] = mapped_column(Float)
    budget_period: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class GroupMember(Base):
    __tablename__ = "group_member"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("user_group.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class UserSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is stored,
    so a stolen database row cannot be replayed as a cookie."""

    __tablename__ = "user_session"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class ApiKey(Base):
    """An API key: shown once at creation, stored as the SHA-256 of its secret part.

    Keys are 256 random bits, so a fast hash is as safe as a slow one here (slow hashes like
    Argon2 protect low-entropy passwords) and keeps authentication off the hot path's budget.
    """

    __tablename__ = "api_key"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)  # visible: hk-1a2b3c4d
    secret_sha256: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[str] = mapped_column(String(200), index=True)
    team_id: Mapped[str | None] = mapped_column(String(200))
    models: Mapped[list[str] | None] = mapped_column(ARRAY(String(200)))  # None: every model
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    budget: Mapped[float | None] = mapped_column(Float)
    budget_period: Mapped[str | None] = mapped_column(String(10))
    # Non-streaming, temperature-0 answers are reused for identical requests of the owner.
    cache_responses: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
