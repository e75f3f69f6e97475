"""Usage: one row per /v1 request, written in batches off the request path.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_record",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("key_id", UUID),
        sa.Column("owner_id", sa.String(200)),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(40), nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("cost", sa.Float, nullable=False),
    )
    op.create_index("ix_usage_record_key_time", "usage_record", ["key_id", "created_at"])
    op.create_index("ix_usage_record_owner_time", "usage_record", ["owner_id", "created_at"])
    op.create_index(
        "ix_usage_record_created_brin", "usage_record", ["created_at"], postgresql_using="brin"
    )


def downgrade() -> None:
    op.drop_table("usage_record")
