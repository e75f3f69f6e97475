"""A stream's usage is recorded when it starts, as an estimate, and replaced by its real
row when it ends: a replica that dies mid-stream leaves the estimate, not nothing.

`call_id` ties the two rows of one request; `estimated` marks the first. Estimates are few
(streams in flight, and those cut by a crash), so their index is partial.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_record", sa.Column("call_id", UUID()))
    op.add_column(
        "usage_record",
        sa.Column("estimated", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        "ix_usage_record_estimates",
        "usage_record",
        ["call_id"],
        postgresql_where=sa.text("estimated"),
    )


def downgrade() -> None:
    op.drop_index("ix_usage_record_estimates", table_name="usage_record")
    op.drop_column("usage_record", "estimated")
    op.drop_column("usage_record", "call_id")
