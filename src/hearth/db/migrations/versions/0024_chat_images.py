"""Images attached to chat messages, kept in the database beside their message (deleted
with it, or with the chat, by CASCADE). An image uploaded for a message not sent yet has
no message_id.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_image",
        sa.Column("id", postgresql.UUID(), nullable=False),
        sa.Column("chat_id", postgresql.UUID(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("content_type", sa.String(20), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chat.id"], name=op.f("fk_chat_image_chat_id_chat"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_message.id"],
            name=op.f("fk_chat_image_message_id_chat_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_image")),
    )
    op.create_index("ix_chat_image_chat_id", "chat_image", ["chat_id"])
    op.create_index("ix_chat_image_message_id", "chat_image", ["message_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_chat_image_message_id", table_name="chat_image")
    op.drop_index("ix_chat_image_chat_id", table_name="chat_image")
    op.drop_table("chat_image")
