"""The catalog: models, hardware profiles with their prices, and deployments of a model on
hardware. A deployment's model and hardware cannot be deleted while it uses them (RESTRICT);
prices, counts and replicas are checked in SQL.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

PRICE = sa.Numeric(12, 4)


def _times() -> list[sa.Column]:
    return [
        sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()"))
        for name in ("created_at", "updated_at")
    ]


def _text(name: str, length: int | None = None) -> sa.Column:
    kind = sa.String(length) if length else sa.Text()
    return sa.Column(name, kind, nullable=False, server_default="")


def upgrade() -> None:
    op.create_table(
        "catalog_model",
        sa.Column("id", UUID),
        sa.Column("name", sa.String(200), nullable=False),
        _text("family", 100),
        sa.Column("parameters", sa.BigInteger),
        sa.Column("quantization", sa.String(100)),
        sa.Column("context_length", sa.Integer),
        _text("licence", 100),
        _text("source", 500),
        _text("notes"),
        *_times(),
        sa.PrimaryKeyConstraint("id", name="pk_catalog_model"),
        sa.UniqueConstraint("name", name="uq_catalog_model_name"),
        sa.CheckConstraint(
            "parameters IS NULL OR parameters >= 0", name="ck_catalog_model_parameters"
        ),
        sa.CheckConstraint(
            "context_length IS NULL OR context_length >= 1",
            name="ck_catalog_model_context_length",
        ),
    )
    op.create_table(
        "catalog_hardware",
        sa.Column("id", UUID),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("accelerator", sa.String(100)),
        sa.Column("accelerator_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cpu_cores", sa.Integer),
        sa.Column("memory_gb", sa.Numeric(10, 2)),
        sa.Column("on_demand_per_hour", PRICE, nullable=False, server_default="0"),
        sa.Column("spot_per_hour", PRICE),
        _text("notes"),
        *_times(),
        sa.PrimaryKeyConstraint("id", name="pk_catalog_hardware"),
        sa.UniqueConstraint("name", name="uq_catalog_hardware_name"),
        sa.CheckConstraint("accelerator_count >= 0", name="ck_catalog_hardware_accelerator_count"),
        sa.CheckConstraint(
            "cpu_cores IS NULL OR cpu_cores >= 0", name="ck_catalog_hardware_cpu_cores"
        ),
        sa.CheckConstraint(
            "memory_gb IS NULL OR memory_gb >= 0", name="ck_catalog_hardware_memory_gb"
        ),
        sa.CheckConstraint(
            "on_demand_per_hour >= 0", name="ck_catalog_hardware_on_demand_per_hour"
        ),
        sa.CheckConstraint(
            "spot_per_hour IS NULL OR spot_per_hour >= 0",
            name="ck_catalog_hardware_spot_per_hour",
        ),
    )
    op.create_table(
        "catalog_deployment",
        sa.Column("id", UUID),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("model_id", UUID, nullable=False),
        sa.Column("hardware_id", UUID),
        sa.Column("engine", sa.String(50), nullable=False),
        sa.Column("endpoint", sa.String(500)),
        sa.Column("replicas", sa.Integer, nullable=False, server_default="1"),
        sa.Column("source", sa.String(10), nullable=False, server_default="manual"),
        _text("notes"),
        *_times(),
        sa.PrimaryKeyConstraint("id", name="pk_catalog_deployment"),
        sa.UniqueConstraint("name", name="uq_catalog_deployment_name"),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["catalog_model.id"],
            ondelete="RESTRICT",
            name="fk_catalog_deployment_model_id_catalog_model",
        ),
        sa.ForeignKeyConstraint(
            ["hardware_id"],
            ["catalog_hardware.id"],
            ondelete="RESTRICT",
            name="fk_catalog_deployment_hardware_id_catalog_hardware",
        ),
        sa.CheckConstraint("replicas >= 1", name="ck_catalog_deployment_replicas"),
        sa.CheckConstraint("source IN ('gateway', 'manual')", name="ck_catalog_deployment_source"),
    )
    op.create_index("ix_catalog_deployment_model_id", "catalog_deployment", ["model_id"])
    op.create_index("ix_catalog_deployment_hardware_id", "catalog_deployment", ["hardware_id"])


def downgrade() -> None:
    op.drop_table("catalog_deployment")
    op.drop_table("catalog_hardware")
    op.drop_table("catalog_model")
