"""Tables the catalog owns: models, hardware profiles with their prices, deployments.

A deployment refers to its model and hardware with ON DELETE RESTRICT: what a deployment
uses cannot be deleted from under it. The numeric checks are in SQL as well as in the
request shapes, so a row written by any path (a migration, psql) stays meaningful.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hearth.db.base import Base

# USD per hour, to a hundredth of a cent: spot prices are quoted that finely.
PRICE = Numeric(12, 4)


class CatalogModel(Base):
    __tablename__ = "catalog_model"
    __table_args__ = (
        CheckConstraint("parameters IS NULL OR parameters >= 0", name="parameters"),
        CheckConstraint("context_length IS NULL OR context_length >= 1", name="context_length"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    # The name the gateway serves it under, when it does.
    name: Mapped[str] = mapped_column(String(200), unique=True)
    family: Mapped[str] = mapped_column(String(100), default="", server_default="")
    parameters: Mapped[int | None] = mapped_column(BigInteger)
    quantization: Mapped[str | None] = mapped_column(String(100))
    context_length: Mapped[int | None] = mapped_column(Integer)
    licence: Mapped[str] = mapped_column(String(100), default="", server_default="")
    source: Mapped[str] = mapped_column(String(500), default="", server_default="")
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CatalogHardware(Base):
    __tablename__ = "catalog_hardware"
    __table_args__ = (
        CheckConstraint("accelerator_count >= 0", name="accelerator_count"),
        CheckConstraint("cpu_cores IS NULL OR cpu_cores >= 0", name="cpu_cores"),
        CheckConstraint("memory_gb IS NULL OR memory_gb >= 0", name="memory_gb"),
        CheckConstraint("on_demand_per_hour >= 0", name="on_demand_per_hour"),
        CheckConstraint("spot_per_hour IS NULL OR spot_per_hour >= 0", name="spot_per_hour"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # The GPU (or other accelerator) type; null for a CPU-only machine.
    accelerator: Mapped[str | None] = mapped_column(String(100))
    accelerator_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cpu_cores: Mapped[int | None] = mapped_column(Integer)
    memory_gb: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    on_demand_per_hour: Mapped[Decimal] = mapped_column(PRICE, default=0, server_default="0")
    spot_per_hour: Mapped[Decimal | None] = mapped_column(PRICE)
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CatalogDeployment(Base):
    __tablename__ = "catalog_deployment"
    __table_args__ = (
        CheckConstraint("replicas >= 1", name="replicas"),
        CheckConstraint("source IN ('gateway', 'manual')", name="source"),
        # RESTRICT looks deployments up by these on every delete of a model or hardware.
        Index("ix_catalog_deployment_model_id", "model_id"),
        Index("ix_catalog_deployment_hardware_id", "hardware_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_model.id", ondelete="RESTRICT"))
    hardware_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("catalog_hardware.id", ondelete="RESTRICT")
    )
    engine: Mapped[str] = mapped_column(String(50))  # llama-server, vllm, ollama, openai...
    # The gateway's name for the deployment (its engine), or the URL it is reached at.
    endpoint: Mapped[str | None] = mapped_column(String(500))
    replicas: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # gateway: seeded at start-up from what the gateway serves; manual: an admin's.
    source: Mapped[str] = mapped_column(String(10), default="manual", server_default="manual")
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
