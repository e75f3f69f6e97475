"""Tables the gateway owns: one usage row per /v1 request; stored /v1/responses answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from hearth.db.base import Base


class UsageRecord(Base):
    __tablename__ = "usage_record"
    __table_args__ = (
        # Per-key spend over a period stays an index range scan at millions of rows.
        Index("ix_usage_record_key_time", "key_id", "created_at"),
        Index("ix_usage_record_owner_time", "owner_id", "created_at"),
        # Retention deletes by time; BRIN is tiny for an append-only, time-ordered table.
        Index("ix_usage_record_created_brin", "created_at", postgresql_using="brin"),
        Index("ix_usage_record_estimates", "call_id", postgresql_where=text("estimated")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    key_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    owner_id: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    deployment: Mapped[str] = mapped_column(String(200))  # the engine that served it
    endpoint: Mapped[str] = mapped_column(String(40))  # chat, embeddings
    status: Mapped[int] = mapped_column(SmallInteger)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    # A stream's row written when it starts (status 0), replaced by the real one, with the
    # same call_id, when it ends; one left behind is a stream its replica never finished.
    call_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    estimated: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    # Whom the application asked for: the request's `user` or `safety_identifier`.
    end_user: Mapped[str | None] = mapped_column(String(200))


class StoredResponse(Base):
    """A /v1/responses answer kept for `previous_response_id` (OpenAI's `store`, on by
    default): its own input messages and output text, and the response it continued, so a
    conversation is read back by following `previous_id`. Visible to its owner only."""

    __tablename__ = "gateway_response"
    __table_args__ = (Index("ix_gateway_response_owner_time", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(200))
    previous_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("gateway_response.id", ondelete="SET NULL")
    )
    model: Mapped[str] = mapped_column(String(200))
    # The messages this request added (instructions are not carried to later turns).
    input: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    output_text: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the response object, as returned
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
