"""Shared chats: a read-only link (an unguessable token) to a chat for the site's signed-in
users. A snapshot by cutoff: the link shows the messages up to the one that was last when
it was made. Revoking keeps the row (revoked_at); deleting the chat deletes its links.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_share",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("chat_id", postgresql.UUID(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("last_message_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chat.id"], name=op.f("fk_chat_share_chat_id_chat"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_chat_share")),
    )
    op.create_index("ix_chat_share_chat_id", "chat_share", ["chat_id"])
    op.create_index(
        "uq_chat_share_active",
        "chat_share",
        ["chat_id"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_chat_share_active", table_name="chat_share")
    op.drop_index("ix_chat_share_chat_id", table_name="chat_share")
    op.drop_table("chat_share")
