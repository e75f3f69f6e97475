"""Stored /v1/responses answers, for `previous_response_id`.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_response",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.String(200), nullable=False),
        sa.Column("previous_id", sa.String(64), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("input", postgresql.JSONB(), nullable=False),
        sa.Column("output_text", sa.Text(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["previous_id"],
            ["gateway_response.id"],
            name=op.f("fk_gateway_response_previous_id_gateway_response"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_response")),
    )
    op.create_index(
        "ix_gateway_response_owner_time", "gateway_response", ["owner_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_gateway_response_owner_time", table_name="gateway_response")
    op.drop_table("gateway_response")
