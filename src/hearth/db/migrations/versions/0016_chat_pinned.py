"""Pinned chats: first in their owner's list. The list's index gains the flag, so the list
(pinned first, then most recently active) is still read in index order.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "chat", sa.Column("pinned", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.drop_index("ix_chat_owner_list", table_name="chat")
    op.create_index(
        "ix_chat_owner_list", "chat", ["owner_id", "archived", "pinned", "updated_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_chat_owner_list", table_name="chat")
    op.create_index("ix_chat_owner_list", "chat", ["owner_id", "archived", "updated_at", "id"])
    op.drop_column("chat", "pinned")
