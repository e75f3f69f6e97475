"""Tables the lab owns: benchmark runs, their stages, and one row per request."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from hearth.db.base import Base

RUN_STATUSES = ("queued", "running", "interrupted", "finished", "failed")


class BenchRun(Base):
    """A benchmark: what it measured (`spec`, never a key), against which catalog
    deployment, and where it is. `source` says whether the lab ran it or it was imported
    from another tool's result file."""

    __tablename__ = "lab_run"
    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        Index("ix_lab_run_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    source: Mapped[str] = mapped_column(String(32), default="hearth")  # hearth | vllm | guidellm
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    target: Mapped[str] = mapped_column(String(2000))  # the base URL measured
    model: Mapped[str] = mapped_column(String(200))
    # A catalog deployment, by id: the catalog owns its table, the lab asks its service.
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # starts, resumes included
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BenchStage(Base):
    """One stage of a run; `summary` (lab.metrics.Summary) is set when it finished."""

    __tablename__ = "lab_stage"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lab_run.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    valid: Mapped[bool | None] = mapped_column(Boolean)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BenchRequest(Base):
    """One request of a stage, written by COPY in batches. Times are seconds from the start
    of the stage's segment (a resumed stage starts a new segment)."""

    __tablename__ = "lab_request"
    __table_args__ = (CheckConstraint("sent >= planned - 0.001", name="sent_after_planned"),)

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lab_run.id", ondelete="CASCADE"), primary_key=True
    )
    stage_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment: Mapped[int] = mapped_column(SmallInteger)
    planned: Mapped[float] = mapped_column(Float)
    sent: Mapped[float] = mapped_column(Float)
    first: Mapped[float | None] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    chunks: Mapped[list[float]] = mapped_column(ARRAY(Float))
    status: Mapped[int] = mapped_column(SmallInteger)
    error: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    server_input_tokens: Mapped[int | None] = mapped_column(Integer)
    server_output_tokens: Mapped[int | None] = mapped_column(Integer)
    client_output_tokens: Mapped[int | None] = mapped_column(Integer)
