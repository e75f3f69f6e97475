"""Chat tags: its owner's labels on a chat, several a chat, told apart case-insensitively
(`key`, the name case-folded) and shown as first spelt (`name`). Deleting the chat
deletes its tags.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_tag",
        sa.Column("chat_id", postgresql.UUID(), nullable=False),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chat.id"], name=op.f("fk_chat_tag_chat_id_chat"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("chat_id", "key", name=op.f("pk_chat_tag")),
    )


def downgrade() -> None:
    op.drop_table("chat_tag")
