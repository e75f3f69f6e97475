"""Tables the accounts feature owns. Users and groups will join them; for now, API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, DateTime, Float, Integer, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hearth.db.base import Base


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
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
