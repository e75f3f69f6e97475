"""The model lab's tables: benchmark runs, their stages (with each one's summary), and one
row per request, written by COPY.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lab_run",
        sa.Column("id", postgresql.UUID(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("spec", postgresql.JSONB(), nullable=False),
        sa.Column("target", sa.String(2000), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("deployment_id", postgresql.UUID(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'interrupted', 'finished', 'failed')",
            name=op.f("ck_lab_run_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lab_run")),
    )
    op.create_index("ix_lab_run_created_at", "lab_run", ["created_at"])
    op.create_table(
        "lab_stage",
        sa.Column("run_id", postgresql.UUID(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("spec", postgresql.JSONB(), nullable=False),
        sa.Column("summary", postgresql.JSONB(), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["lab_run.id"], name=op.f("fk_lab_stage_run_id_lab_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "index", name=op.f("pk_lab_stage")),
    )
    op.create_table(
        "lab_request",
        sa.Column("run_id", postgresql.UUID(), nullable=False),
        sa.Column("stage_index", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("segment", sa.SmallInteger(), nullable=False),
        sa.Column("planned", sa.Float(), nullable=False),
        sa.Column("sent", sa.Float(), nullable=False),
        sa.Column("first", sa.Float(), nullable=True),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("chunks", postgresql.ARRAY(sa.Float()), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("server_input_tokens", sa.Integer(), nullable=True),
        sa.Column("server_output_tokens", sa.Integer(), nullable=True),
        sa.Column("client_output_tokens", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "sent >= planned - 0.001", name=op.f("ck_lab_request_sent_after_planned")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["lab_run.id"],
            name=op.f("fk_lab_request_run_id_lab_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "stage_index", "index", name=op.f("pk_lab_request")),
    )


def downgrade() -> None:
    op.drop_table("lab_request")
    op.drop_table("lab_stage")
    op.drop_index("ix_lab_run_created_at", table_name="lab_run")
    op.drop_table("lab_run")
